import LumosCore

/// Cloud Analytics heatmaps (docs/analytics.md, "Heatmaps"): x is time (one column per second
/// from `start` for `duration` seconds), y is the numeric field's value from `ymin` (bottom) to
/// `ymax` (top) in `nbuckets` rows, and a cell's colour intensity is its count. Selected values
/// of the discrete field get hues of their own; `isolate` draws only them, `exclude` everything
/// but them.
public struct HeatmapParameters: Sendable, Equatable {
    /// The start_time a request may name (unix seconds, to 2^40, year 36812): a bound that keeps
    /// every time in an answer an exact JSON integer (docs/api/openapi.yaml says the same).
    public static let startTimes: ClosedRange<Int64> = 0...(1 << 40)
    public var start: Int64
    public var duration: Int64
    public var width = 600
    public var height = 300
    public var ymin: Int64 = 0
    /// nil: the top of the highest bucket with a count in the range (the field's range for
    /// linear quantisations).
    public var ymax: Int64?
    public var nbuckets = 50
    public var selected: [String] = []
    public var isolate = false
    public var exclude = false
    /// Degrees: the first for everything not selected, then one per selected value.
    public var hues: [Double] = [21, 0, 120, 240, 60, 300, 180, 90, 330]
    /// `linear` (intensity proportional to count) or `rank` (to the count's rank).
    public var coloring = "linear"

    public init(start: Int64, duration: Int64) {
        self.start = start
        self.duration = duration
    }

    /// From the query string: start_time, duration, width, height, ymin, ymax, nbuckets,
    /// selected (repeated or comma-separated), isolate, exclude, hues, coloring. Bad values are
    /// a 400 naming the parameter.
    public init(query: [(String, String)], latest: Int64, retention: Int) throws {
        var values: [String: String] = [:]
        var selected: [String] = []
        var hues: [Double] = []
        let known: Set<String> = ["start_time", "duration", "width", "height", "ymin", "ymax", "nbuckets", "selected",
                                  "isolate", "exclude", "hues", "coloring", "x", "y"]
        for (k, v) in query {
            guard known.contains(k) else { throw LumosError.invalid("heatmap: unknown parameter \(k) (known: \(known.sorted().joined(separator: ", ")))") }
            switch k {
            case "selected": selected += v.split(separator: ",", omittingEmptySubsequences: true).map(String.init)
            case "hues":
                for h in v.split(separator: ",") {
                    guard let d = Double(h), d.isFinite, d >= 0, d < 360 else { throw LumosError.invalid("heatmap: hues are degrees in [0, 360), not \(h)") }
                    hues.append(d)
                }
            default:
                guard values[k] == nil else { throw LumosError.invalid("heatmap: \(k) is given twice") }
                values[k] = v
            }
        }
        func int(_ k: String, _ range: ClosedRange<Int64>) throws -> Int64? {
            guard let text = values[k] else { return nil }
            guard let n = Int64(text), range.contains(n) else {
                throw LumosError.invalid("heatmap: \(k) must be an integer in \(range.lowerBound)...\(range.upperBound), not \(text)")
            }
            return n
        }
        func bool(_ k: String) throws -> Bool {
            guard let text = values[k] else { return false }
            switch text {
            case "true", "1": return true
            case "false", "0": return false
            default: throw LumosError.invalid("heatmap: \(k) is true or false, not \(text)")
            }
        }
        let width = Int(try int("width", 10...2000) ?? 600)
        // At least a pixel per second.
        let duration = try int("duration", 1...Int64(min(retention, width, 3600))) ?? min(60, Int64(min(retention, width)))
        let start = try int("start_time", HeatmapParameters.startTimes) ?? (latest - duration + 1)
        self.init(start: start, duration: duration)
        self.width = width
        height = Int(try int("height", 10...1000) ?? 300)
        ymin = try int("ymin", 0...(1 << 62)) ?? 0
        ymax = try int("ymax", 1...(1 << 62))
        if let ymax, ymax <= ymin { throw LumosError.invalid("heatmap: ymax (\(ymax)) must be above ymin (\(ymin))") }
        nbuckets = Int(try int("nbuckets", 1...Int64(min(200, height))) ?? Int64(min(50, height)))
        guard selected.count <= 8 else { throw LumosError.invalid("heatmap: at most 8 selected values") }
        self.selected = selected
        isolate = try bool("isolate")
        exclude = try bool("exclude")
        guard !(isolate && exclude) else { throw LumosError.invalid("heatmap: isolate and exclude cannot both be true") }
        if !hues.isEmpty { self.hues = hues }
        coloring = values["coloring"] ?? "linear"
        guard coloring == "linear" || coloring == "rank" else { throw LumosError.invalid("heatmap: coloring is linear or rank, not \(coloring)") }
    }
}

/// A heatmap's counts before colouring: per layer (0: what is not selected, then one per
/// selected value), per second, per bucket.
public struct Heatmap: Sendable {
    public let parameters: HeatmapParameters
    public let ymax: Int64
    /// counts[layer][column][bucket]
    public let counts: [[[Double]]]
    /// Values of the discrete field seen in the range, with their totals.
    public let present: [String: Double]

    /// Spreads each bucket's count over the heatmap rows it overlaps, in proportion.
    public init(_ seconds: [SecondValues], bounds: BucketBounds, _ p: HeatmapParameters) {
        parameters = p
        var top = p.ymax
        if top == nil {
            var highest: Int64 = 1
            for s in seconds {
                for (_, row) in s.rows {
                    for (i, c) in row.enumerated() where c > 0 && i < bounds.ranges.count {
                        highest = max(highest, bounds.ranges[i].upperBound == Int64.max ? Int64.max : bounds.ranges[i].upperBound + 1)
                    }
                }
            }
            top = highest
        }
        let ymax = max(top!, p.ymin + 1)
        self.ymax = ymax
        let span = Double(ymax - p.ymin) / Double(p.nbuckets)
        var counts = [[[Double]]](repeating: [[Double]](repeating: [Double](repeating: 0, count: p.nbuckets), count: Int(p.duration)),
                                  count: p.selected.count + 1)
        var present: [String: Double] = [:]
        for s in seconds {
            let column = Int(s.time - p.start)
            guard column >= 0, column < Int(p.duration) else { continue }
            for (name, row) in s.rows {
                let layer = (p.selected.firstIndex(of: name) ?? -1) + 1
                present[name, default: 0] += Double(row.reduce(0, +))
                Self.spread(row, bounds: bounds, ymin: p.ymin, span: span, nbuckets: p.nbuckets) { b, c in counts[layer][column][b] += c }
            }
        }
        self.counts = counts
        self.present = present
    }

    /// Calls `add(bucket, count)` for each heatmap row a distribution's buckets overlap, with
    /// the share of the count that falls in it.
    static func spread(_ row: [Int64], bounds: BucketBounds, ymin: Int64, span: Double, nbuckets: Int, _ add: (Int, Double) -> Void) {
        for (i, c) in row.enumerated() where c != 0 && i < bounds.ranges.count {
            let r = bounds.ranges[i]
            let lo = Double(r.lowerBound), hi = Double(r.upperBound) + 1
            let first = max(0, Int(((lo - Double(ymin)) / span).rounded(.down)))
            let last = min(nbuckets - 1, Int(((hi - Double(ymin)) / span).rounded(.up)) - 1)
            guard first <= last else { continue }
            for b in first...last {
                let bl = Double(ymin) + Double(b) * span, bh = bl + span
                let overlap = min(hi, bh) - max(lo, bl)
                if overlap > 0 { add(b, Double(c) * overlap / (hi - lo)) }
            }
        }
    }

    /// The bucket's row range of values [low, high).
    public func valueRange(bucket b: Int) -> (low: Double, high: Double) {
        let span = Double(ymax - parameters.ymin) / Double(parameters.nbuckets)
        return (Double(parameters.ymin) + Double(b) * span, Double(parameters.ymin) + Double(b + 1) * span)
    }

    /// A cell's details (CA's heatmap/details): the second, the value range, and each value of
    /// the discrete field with its count in the cell, from the same seconds the image was drawn.
    public func details(_ seconds: [SecondValues], bounds: BucketBounds, column: Int, bucket: Int) -> [String: Double] {
        let span = Double(ymax - parameters.ymin) / Double(parameters.nbuckets)
        var out: [String: Double] = [:]
        for s in seconds where s.time == parameters.start + Int64(column) {
            for (name, row) in s.rows {
                Self.spread(row, bounds: bounds, ymin: parameters.ymin, span: span, nbuckets: parameters.nbuckets) { b, c in
                    if b == bucket { out[name, default: 0] += c }
                }
            }
        }
        return out
    }

    /// The layers drawn: isolate keeps the selected ones, exclude the rest.
    var visibleLayers: [Int] {
        if parameters.isolate { return Array(1..<counts.count) }
        if parameters.exclude { return [0] }
        return Array(0..<counts.count)
    }

    /// The pixel ranges of column `c` and bucket `b` (bucket 0 at the bottom).
    func xRange(_ c: Int) -> Range<Int> {
        let p = parameters
        return (c * p.width / Int(p.duration))..<((c + 1) * p.width / Int(p.duration))
    }

    func yRange(_ b: Int) -> Range<Int> {
        let p = parameters
        let top = p.height - (b + 1) * p.height / p.nbuckets, bottom = p.height - b * p.height / p.nbuckets
        return top..<bottom
    }

    /// The cell under a pixel: (column, bucket), or nil outside the image.
    public func cell(x: Int, y: Int) -> (column: Int, bucket: Int)? {
        let p = parameters
        guard x >= 0, x < p.width, y >= 0, y < p.height else { return nil }
        return (x * Int(p.duration) / p.width, min(p.nbuckets - 1, (p.height - 1 - y) * p.nbuckets / p.height))
    }

    public func render() -> RGBImage {
        let p = parameters
        var image = RGBImage(width: p.width, height: p.height)
        let layers = visibleLayers
        var totals: [Double] = []
        for c in 0..<Int(p.duration) {
            for b in 0..<p.nbuckets {
                let t = layers.reduce(0) { $0 + counts[$1][c][b] }
                if t > 0 { totals.append(t) }
            }
        }
        guard let maximum = totals.max() else { return image }
        let ranks = p.coloring == "rank" ? Array(Set(totals)).sorted() : []
        for c in 0..<Int(p.duration) {
            for b in 0..<p.nbuckets {
                let total = layers.reduce(0) { $0 + counts[$1][c][b] }
                guard total > 0 else { continue }
                var level = total / maximum
                if !ranks.isEmpty, let r = ranks.firstIndex(of: total) { level = Double(r + 1) / Double(ranks.count) }
                // Hues mixed by each layer's share of the cell; darker for more.
                var rgb = (0.0, 0.0, 0.0)
                for l in layers where counts[l][c][b] > 0 {
                    let share = counts[l][c][b] / total
                    let hue = p.hues[l % p.hues.count]
                    let colour = Self.hsl(hue, 0.9, 0.92 - 0.62 * level)
                    rgb = (rgb.0 + share * colour.0, rgb.1 + share * colour.1, rgb.2 + share * colour.2)
                }
                let pixel = (UInt8(min(255, rgb.0 * 255)), UInt8(min(255, rgb.1 * 255)), UInt8(min(255, rgb.2 * 255)))
                for y in yRange(b) { for x in xRange(c) { image[x, y] = pixel } }
            }
        }
        return image
    }

    static func hsl(_ h: Double, _ s: Double, _ l: Double) -> (Double, Double, Double) {
        let c = (1 - abs(2 * l - 1)) * s
        let hp = h / 60
        let x = c * (1 - abs(hp.truncatingRemainder(dividingBy: 2) - 1))
        let (r, g, b): (Double, Double, Double)
        switch hp {
        case ..<1: (r, g, b) = (c, x, 0)
        case ..<2: (r, g, b) = (x, c, 0)
        case ..<3: (r, g, b) = (0, c, x)
        case ..<4: (r, g, b) = (0, x, c)
        case ..<5: (r, g, b) = (x, 0, c)
        default: (r, g, b) = (c, 0, x)
        }
        let m = l - c / 2
        return (r + m, g + m, b + m)
    }
}
