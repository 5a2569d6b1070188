import Foundation
import Vocabulary

/// The cost of a ring allreduce of `bytes` over N ranks in the α-β model:
///
///     T(bytes) = 2(N−1)·α + 2·((N−1)/N)·bytes·β
///
/// α: seconds per message step (latency and software overhead), β: seconds
/// per byte on one link (1/β is the link bandwidth a ring can use; it is what
/// nccl-tests call bus bandwidth). A reduce-scatter and an allgather of N−1
/// steps each; every step moves bytes/N on every link.
///
/// `hostCpuPerByte`: busy CPU seconds a host spends per byte its link sends
/// (and receives) during an allreduce: the kernel's TCP stack, MPI's copies
/// and sums, the wait's tests. Measured by `allreduce-bench` across hosts;
/// nil where not measured (a given --link, one host, older files).
public struct LinkCost: Codable, Equatable, Sendable {
    /// Seconds per step.
    public var alpha: Double
    /// Seconds per byte.
    public var beta: Double
    /// Host CPU seconds per byte on the link.
    public var hostCpuPerByte: Double?

    public init(alpha: Double, beta: Double, hostCpuPerByte: Double? = nil) {
        self.alpha = alpha
        self.beta = beta
        self.hostCpuPerByte = hostCpuPerByte
    }

    /// A link of `bitsPerSecond` with `latency` seconds per step.
    public init(bitsPerSecond: Double, latency: Double) {
        self.init(alpha: latency, beta: 8 / bitsPerSecond)
    }

    /// Bytes each link carries in a ring allreduce of `bytes` over N
    /// ranks, 2((N−1)/N)·bytes: what each host's link carries when the
    /// ranks sit host by host (one edge of the ring leaves each host).
    public static func ringLinkBytes(_ bytes: Double, ranks: Int) -> Double {
        ranks > 1 ? 2 * Double(ranks - 1) / Double(ranks) * bytes : 0
    }

    /// Allreduce seconds; 0 for one rank (nothing to exchange).
    public func allreduceSeconds(bytes: Double, ranks: Int) -> Double {
        guard ranks > 1 else { return 0 }
        let n = Double(ranks)
        return 2 * (n - 1) * alpha + 2 * ((n - 1) / n) * bytes * beta
    }

    /// 1/β in GB/s (10⁹ bytes per second); infinite when β is 0.
    public var bandwidthGBps: Double { beta > 0 ? 1 / beta / 1e9 : .infinity }
}

/// A least-squares fit of the ring cost to measured allreduce times.
public struct CostFit: Codable, Equatable, Sendable {
    /// How rows are weighed.
    public enum Weighting: String, Codable, CaseIterable, Sendable {
        /// Minimise Σ (T̂ − T)²: the largest sizes dominate (β is precise, α is not).
        case absolute
        /// Minimise Σ ((T̂ − T)/T)²: every row counts the same, so small sizes
        /// determine α and large ones β.
        case relative
    }

    public var ranks: Int
    public var cost: LinkCost
    public var weighting: Weighting
    /// Rows the fit used.
    public var points: Int
    /// Weighted coefficient of determination of the fitted line (1 = exact).
    public var rSquared: Double
    /// Largest |T̂ − T| / T over the rows.
    public var maxRelativeError: Double
    /// Whether α or β came out negative unconstrained and was held at 0.
    public var constrained: Bool

    /// Fits T = c₀ + c₁·bytes by weighted least squares with c₀, c₁ ≥ 0 and
    /// reads α = c₀ / (2(N−1)), β = c₁ / (2(N−1)/N). Needs N ≥ 2 and at least
    /// two distinct sizes with positive times.
    public static func fit(ranks: Int, bytes: [Double], seconds: [Double], weighting: Weighting = .relative) throws -> CostFit {
        guard ranks >= 2 else {
            throw TrainerError.usage("the α-β fit needs at least 2 ranks (one rank exchanges nothing), got \(ranks)")
        }
        guard bytes.count == seconds.count else {
            throw TrainerError.usage("the fit needs as many sizes as times (\(bytes.count) vs \(seconds.count))")
        }
        guard bytes.allSatisfy({ $0.isFinite && $0 >= 0 }), seconds.allSatisfy({ $0.isFinite && $0 > 0 }) else {
            throw TrainerError.usage("the fit needs sizes ≥ 0 and times > 0")
        }
        guard Set(bytes).count >= 2 else {
            throw TrainerError.usage("the fit needs at least two different sizes, got \(Set(bytes).count)")
        }
        let w = seconds.map { weighting == .relative ? 1 / ($0 * $0) : 1 }
        var s = 0.0, sx = 0.0, sy = 0.0, sxx = 0.0, sxy = 0.0
        for i in bytes.indices {
            s += w[i]; sx += w[i] * bytes[i]; sy += w[i] * seconds[i]
            sxx += w[i] * bytes[i] * bytes[i]; sxy += w[i] * bytes[i] * seconds[i]
        }
        // Normal equations, centred to keep precision with sizes up to 1e9.
        let xm = sx / s, ym = sy / s
        var cxx = 0.0, cxy = 0.0
        for i in bytes.indices {
            cxx += w[i] * (bytes[i] - xm) * (bytes[i] - xm)
            cxy += w[i] * (bytes[i] - xm) * (seconds[i] - ym)
        }
        var c1 = cxy / cxx
        var c0 = ym - c1 * xm
        var constrained = false
        if c0 < 0 {
            c0 = 0
            c1 = sxy / sxx
            constrained = true
        }
        if c1 < 0 {
            c1 = 0
            c0 = ym
            constrained = true
        }
        let n = Double(ranks)
        let cost = LinkCost(alpha: c0 / (2 * (n - 1)), beta: c1 / (2 * (n - 1) / n))

        var residual = 0.0, total = 0.0, worst = 0.0
        for i in bytes.indices {
            let predicted = c0 + c1 * bytes[i]
            residual += w[i] * (predicted - seconds[i]) * (predicted - seconds[i])
            total += w[i] * (seconds[i] - ym) * (seconds[i] - ym)
            worst = max(worst, abs(predicted - seconds[i]) / seconds[i])
        }
        return CostFit(ranks: ranks, cost: cost, weighting: weighting, points: bytes.count,
                       rSquared: total > 0 ? 1 - residual / total : 1, maxRelativeError: worst,
                       constrained: constrained)
    }

    /// The fitted time of one allreduce at the fit's rank count.
    public func predict(bytes: Double) -> Double { cost.allreduceSeconds(bytes: bytes, ranks: ranks) }

    /// One line for people: α in µs, β as 1/bandwidth and ns per byte, the
    /// rows, ranks and weighting of the fit, R² and the worst row; the host
    /// CPU per byte where it was measured.
    public var summary: String {
        let bw = cost.bandwidthGBps.isFinite ? String(format: "%.3f GB/s", cost.bandwidthGBps) : "∞"
        return String(format: "α = %.2f µs, β = 1/(%@) = %.3f ns/byte (%.2f Gbit/s); fit on %d rows at %d ranks, %@ least squares, R² = %.4f, worst row %.1f%% off",
                      cost.alpha * 1e6, bw as NSString, cost.beta * 1e9, cost.beta > 0 ? 8 / cost.beta / 1e9 : .infinity,
                      points, ranks, weighting.rawValue as NSString, rSquared, 100 * maxRelativeError)
            + (constrained ? " (α or β held at 0)" : "")
            + (cost.hostCpuPerByte.map { String(format: "; host CPU %.3f ns per byte on the link", $0 * 1e9) } ?? "")
    }

    /// Host CPU seconds per byte a host's link carries: the rows' busy CPU
    /// of one host summed over the bytes each host's link sent
    /// (`LinkCost.ringLinkBytes`). nil with fewer than 2 hosts (no link: a host's
    /// CPU then is shared-memory copies) or a row without its CPU time.
    public static func hostCpuPerByte(ranks: Int, hosts: Int, rows: [AllreduceResult]) -> Double? {
        guard hosts >= 2, ranks >= 2, !rows.isEmpty else { return nil }
        var cpu = 0.0, bytes = 0.0
        for r in rows {
            guard let c = r.hostCpuSeconds else { return nil }
            cpu += c
            bytes += LinkCost.ringLinkBytes(Double(r.bytes), ranks: ranks)
        }
        return bytes > 0 ? cpu / bytes : nil
    }
}

/// What `vgg-dp allreduce-bench --json FILE` writes: the table, the two
/// whole-gradient rows and the fit. Read back by `vgg-dp model --fit FILE`.
public struct AllreduceBenchRecord: Codable, Sendable {
    public var schema = 1
    public var tool = "vgg-dp allreduce-bench"
    public var startedAt: String
    public var ranks: Int
    public var hosts: [String]
    public var mpiLibrary: String
    public var model: String
    public var imageSize: Int
    public var widthDivisor: Int
    public var classes: Int
    public var gradientBytes: Int
    public var bucketMb: Double
    /// How each call was waited for (blocking or polling); nil in files
    /// written before the benchmark could poll (they blocked).
    public var commWait: CommWait?
    /// The size sweep, smallest first: the rows the fit uses.
    public var rows: [AllreduceResult]
    public var wholeGradient: AllreduceResult
    public var bucketed: AllreduceResult
    /// nil with one rank.
    public var fit: CostFit?

    public init(startedAt: String, ranks: Int, hosts: [String], mpiLibrary: String, model: String, imageSize: Int,
                widthDivisor: Int, classes: Int, gradientBytes: Int, bucketMb: Double, commWait: CommWait? = nil,
                rows: [AllreduceResult], wholeGradient: AllreduceResult, bucketed: AllreduceResult, fit: CostFit?) {
        self.startedAt = startedAt
        self.ranks = ranks
        self.hosts = hosts
        self.mpiLibrary = mpiLibrary
        self.model = model
        self.imageSize = imageSize
        self.widthDivisor = widthDivisor
        self.classes = classes
        self.gradientBytes = gradientBytes
        self.bucketMb = bucketMb
        self.commWait = commWait
        self.rows = rows
        self.wholeGradient = wholeGradient
        self.bucketed = bucketed
        self.fit = fit
    }

    /// Fits the rows (times of the slowest rank), and the host CPU per byte
    /// where the ranks sat on 2 or more hosts.
    public static func fit(ranks: Int, hosts: Int, rows: [AllreduceResult], weighting: CostFit.Weighting) throws -> CostFit {
        var f = try CostFit.fit(ranks: ranks, bytes: rows.map { Double($0.bytes) }, seconds: rows.map(\.seconds), weighting: weighting)
        f.cost.hostCpuPerByte = CostFit.hostCpuPerByte(ranks: ranks, hosts: hosts, rows: rows)
        return f
    }

    public func write(to path: String) throws {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try writeAtomically(try encoder.encode(self), to: path)
    }

    public static func read(from path: String) throws -> AllreduceBenchRecord {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return try decoder.decode(AllreduceBenchRecord.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
    }

    /// Reads `path`, or says in one line why it is not an allreduce-bench --json file.
    public static func load(_ path: String, flag: String = "--fit") throws -> AllreduceBenchRecord {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw TrainerError.usage("\(flag) \(path): no such file")
        }
        guard !isDir.boolValue else { throw TrainerError.usage("\(flag) \(path) is a folder, not an allreduce-bench --json file") }
        do {
            return try read(from: path)
        } catch let error as DecodingError {
            throw TrainerError.usage("\(flag) \(path) is not an allreduce-bench --json file (\(LoadedRun.describe(error)))")
        } catch {
            throw TrainerError.usage("\(flag) \(path): cannot read it: \(error.localizedDescription)")
        }
    }
}
