/// Column output as zfs/vmadm print it: upper-case headers, left-aligned padded columns
/// separated by two spaces; `-H` drops the header and separates fields by one tab.
public struct Table: Sendable {
    public var columns: [String]
    public var rows: [[String]] = []

    public init(columns: [String]) { self.columns = columns }

    public mutating func add(_ row: [String]) { rows.append(row) }

    public func render(header: Bool = true, scripted: Bool = false) -> String {
        if scripted {
            return rows.map { $0.joined(separator: "\t") + "\n" }.joined()
        }
        let all = (header ? [columns.map { $0.uppercased() }] : []) + rows
        guard !all.isEmpty else { return "" }
        var widths = [Int](repeating: 0, count: columns.count)
        for r in all { for (i, c) in r.enumerated() where i < widths.count { widths[i] = max(widths[i], c.count) } }
        var out = ""
        for r in all {
            var line = ""
            for (i, c) in r.enumerated() {
                if i == r.count - 1 { line += c } else { line += c + String(repeating: " ", count: widths[i] - c.count + 2) }
            }
            out += line + "\n"
        }
        return out
    }
}
