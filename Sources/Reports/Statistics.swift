import Foundation

/// Summary of a series of durations (seconds). `sd` is the population
/// standard deviation (divided by n, not n − 1), computed in two passes:
/// the mean first, then √(Σ (x − mean)² / n). In exact arithmetic that is
/// the notebook's √(E[x²] − E[x]²); the two-pass form does not cancel
/// catastrophically when the spread is small against the mean.
public struct Summary: Codable, Equatable, Sendable {
    public var count: Int
    public var mean: Double
    public var sd: Double
    public var min: Double
    public var median: Double
    public var p95: Double
    public var max: Double

    public init(_ xs: [Double]) {
        count = xs.count
        guard !xs.isEmpty else {
            mean = 0; sd = 0; min = 0; median = 0; p95 = 0; max = 0
            return
        }
        let n = Double(xs.count)
        mean = xs.reduce(0, +) / n
        let m = mean
        sd = (xs.reduce(0) { $0 + ($1 - m) * ($1 - m) } / n).squareRoot()
        let sorted = xs.sorted()
        min = sorted[0]
        max = sorted[sorted.count - 1]
        median = Summary.percentile(sorted, 0.5)
        p95 = Summary.percentile(sorted, 0.95)
    }

    /// Linear interpolation between closest ranks (numpy's default).
    public static func percentile(_ sorted: [Double], _ q: Double) -> Double {
        guard !sorted.isEmpty else { return 0 }
        let pos = q * Double(sorted.count - 1)
        let lo = Int(pos.rounded(.down)), hi = Swift.min(lo + 1, sorted.count - 1)
        let f = pos - Double(lo)
        return sorted[lo] * (1 - f) + sorted[hi] * f
    }
}
