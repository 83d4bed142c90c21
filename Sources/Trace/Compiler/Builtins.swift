/// D's built-in variables (Dynamic Tracing Guide, "Built-in Variables") and their types.
enum Builtins {
    static let strings: Set<String> = ["execname", "probeprov", "probemod", "probefunc", "probename", "zonename"]
    static let unsigned: Set<String> = ["timestamp", "vtimestamp", "walltimestamp"]
    /// pid_t, id_t, uid_t, gid_t, processorid_t and int: 4 bytes in D, which decides how
    /// DTrace prints them as aggregation keys.
    static let int32: Set<String> = ["pid", "ppid", "tid", "uid", "gid", "cpu", "errno", "epid", "id"]
    static let signed: Set<String> = ["arg0", "arg1", "arg2", "arg3", "arg4", "arg5", "arg6", "arg7", "arg8", "arg9"]

    static func isBuiltin(_ n: String) -> Bool {
        strings.contains(n) || unsigned.contains(n) || signed.contains(n) || int32.contains(n) || n == "args" || n == "curthread"
    }

    static func type(_ n: String) -> DType? {
        if strings.contains(n) { return .string }
        if unsigned.contains(n) { return .uint64 }
        if signed.contains(n) { return .int64 }
        if int32.contains(n) { return .integer(signed: true, size: 4) }
        return nil
    }
}

/// llquantize's orders of magnitude, with the same arithmetic as libdtrace's
/// dtrace_aggregate_llquantize_bucket: each order [last, this) is split into nbuckets
/// linear buckets starting at bucket index `base`.
struct LogLinearLayout {
    struct Order { var last: Int64; var this: Int64; var width: Int64; var base: Int }
    var lowest: Int64
    var orders: [Order] = []
    var bucketCount: Int

    init(parameters p: [Int64], at location: SourceLocation) throws(DCompileError) {
        let (factor, low, high, steps) = (p[0], p[1], p[2], p[3])
        guard factor >= 2, low >= 0, low < high, steps >= factor, steps % factor == 0 else {
            throw DCompileError(.type, "llquantize( ) needs factor >= 2, low < high, and steps a multiple of factor", at: location)
        }
        guard factor <= 65535, steps <= 65535 else {
            throw DCompileError(.type, "llquantize( ) factor and steps must be at most 65535", at: location)
        }
        var this: Int64 = 1
        for _ in 0..<low {
            let (next, overflow) = this.multipliedReportingOverflow(by: factor)
            guard !overflow else {
                throw DCompileError(.type, "llquantize( ) low magnitude \(factor)^\(low) does not fit in 64 bits", at: location)
            }
            this = next
        }
        lowest = this
        var last = this
        let (first, overflow) = this.multipliedReportingOverflow(by: factor)
        guard !overflow else {
            throw DCompileError(.type, "llquantize( ) low magnitude \(factor)^\(low + 1) does not fit in 64 bits", at: location)
        }
        this = first
        var base = 1
        var order = low
        while order <= high {
            let nbuckets = this > steps ? steps : this
            orders.append(Order(last: last, this: this, width: this / nbuckets, base: base))
            base += Int(nbuckets - nbuckets / factor)
            let (next, overflow) = this.multipliedReportingOverflow(by: factor)
            if overflow {
                guard order == high else {
                    throw DCompileError(.type, "llquantize( ) factor \(factor) raised to the high magnitude \(high) plus one must fit in 64 bits", at: location)
                }
                // The last order needs no next one.
                order += 1
                break
            }
            last = this
            this = next
            order += 1
        }
        bucketCount = base + 1
        guard bucketCount <= 4096 else {
            throw DCompileError(.type, "llquantize( ) would have \(bucketCount) buckets (at most 4096); use fewer steps or orders", at: location)
        }
    }
}
