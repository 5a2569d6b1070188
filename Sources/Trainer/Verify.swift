import Comm
import Foundation
import VGGEngine
import Vocabulary

/// The two data-parallel correctness checks, on the configuration given:
/// 1. replica consistency: every rank ends with bitwise-identical parameters;
/// 2. equivalence: N ranks × B samples give, after the same steps, the
///    weights one rank gets on the global batch of N·B (to float tolerance,
///    since the sums over the batch are added in a different order).
/// Under compression N ranks and one rank differ by design (each rank's
/// error-feedback memory, the low-rank mean), so check 2 becomes: the
/// compressed N-rank loss falls like one uncompressed rank's on the global
/// batch, ending within `lossTolerance` of it.
public struct VerifyResult: Codable, Sendable {
    public var ranks: Int
    public var steps: Int
    public var checksums: [String]
    public var replicasAgree: Bool
    public var maxAbsDifference: Double
    /// max |a − b| / max |b|, over all parameters.
    public var maxRelativeDifference: Double
    /// ‖a − b‖₂ / ‖b‖₂.
    public var relativeL2Difference: Double
    public var tolerance: Double
    public var pass: Bool
    /// With compression: its words, and the mean loss (over ranks) of the
    /// first and last quarter of the timed steps, compressed N-rank run and
    /// uncompressed reference; nil without.
    public var compression: String? = nil
    public var lossStart: Double? = nil
    public var lossEnd: Double? = nil
    public var referenceLossStart: Double? = nil
    public var referenceLossEnd: Double? = nil
    /// Accepted lossEnd / referenceLossEnd − 1.
    public static let lossTolerance = 0.1
}

public enum Verify {
    /// Runs the checks; every rank returns the same result.
    public static func run(config: TrainConfig, world: World, blasThreads: Int, tolerance: Double) throws -> VerifyResult {
        var config = config
        config.mode = .train
        config.peakProbe = false
        let trainer = try DataParallelTrainer(config: config, group: world, blasThreads: blasThreads)
        // run() stops on a replica mismatch; here the mismatch is the finding.
        _ = try? trainer.run()
        // The trainer's parameters (maybe a host's shared window) stay until shutdown, at the end.
        defer { trainer.shutdown() }
        let all = try world.allgather(Checksum.of(trainer.network.parameters))
        let agree = all.allSatisfy { $0 == all[0] }

        // The compressed run's loss, the mean over ranks (each saw its own shard).
        let (start, end) = quarters(trainer.recordsSnapshot().map(\.loss))
        let starts = try world.allgather(start.bitPattern), ends = try world.allgather(end.bitPattern)
        let lossStart = starts.map { Double(bitPattern: $0) }.reduce(0, +) / Double(world.size)
        let lossEnd = ends.map { Double(bitPattern: $0) }.reduce(0, +) / Double(world.size)

        // Rank 0 trains alone, in a group of its own, on the global batch and
        // compares (uncompressed: the run compression is measured against).
        let alone = try world.split(color: world.rank)
        var figures: [Double]? = nil  // rank 0's, shared below
        if world.isRoot {
            var solo = config
            solo.batchPerRank = config.batchPerRank * world.size
            solo.compression = nil
            let reference = try DataParallelTrainer(config: solo, group: alone, blasThreads: blasThreads)
            _ = try reference.run()
            let (s, e) = quarters(reference.recordsSnapshot().map(\.loss))
            figures = compare(trainer.network.parameters, reference.network.parameters) + [s, e]
        }
        let shared: [Double] = try world.broadcast(figures)
        var result = VerifyResult(ranks: world.size, steps: config.warmup + config.steps,
                                  checksums: all.map(Checksum.hex), replicasAgree: agree,
                                  maxAbsDifference: shared[0], maxRelativeDifference: shared[1],
                                  relativeL2Difference: shared[2], tolerance: tolerance,
                                  pass: agree && shared[2] <= tolerance)
        if let c = config.compression {
            result.compression = c.description
            result.lossStart = lossStart
            result.lossEnd = lossEnd
            result.referenceLossStart = shared[3]
            result.referenceLossEnd = shared[4]
            result.pass = agree && lossEnd <= (1 + VerifyResult.lossTolerance) * shared[4]
        }
        return result
    }

    /// Mean of the first and of the last quarter (at least one step) of `losses`.
    static func quarters(_ losses: [Double]) -> (Double, Double) {
        guard !losses.isEmpty else { return (0, 0) }
        let k = max(1, losses.count / 4)
        return (losses.prefix(k).reduce(0, +) / Double(k), losses.suffix(k).reduce(0, +) / Double(k))
    }

    /// (max |a−b|, max |a−b| / max |b|, ‖a−b‖/‖b‖)
    static func compare(_ a: FloatArena, _ b: FloatArena) -> [Double] {
        var maxAbs = 0.0, maxB = 0.0, diff2 = 0.0, norm2 = 0.0
        for i in 0..<a.count {
            let x = Double(a[i]), y = Double(b[i])
            let d = abs(x - y)
            maxAbs = max(maxAbs, d)
            maxB = max(maxB, abs(y))
            diff2 += d * d
            norm2 += y * y
        }
        return [maxAbs, maxB > 0 ? maxAbs / maxB : 0, norm2 > 0 ? (diff2 / norm2).squareRoot() : 0]
    }
}
