import Comm
import Foundation
import VGGEngine
import Vocabulary

/// The two data-parallel correctness checks, on the configuration given:
/// 1. replica consistency: every rank ends with bitwise-identical parameters;
/// 2. equivalence: N ranks × B samples give, after the same steps, the
///    weights one rank gets on the global batch of N·B (to float tolerance,
///    since the sums over the batch are added in a different order).
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

        // Rank 0 trains alone, in a group of its own, on the global batch and compares.
        let alone = try world.split(color: world.rank)
        var figures: [Double]? = nil  // rank 0's, shared below
        if world.isRoot {
            var solo = config
            solo.batchPerRank = config.batchPerRank * world.size
            let reference = try DataParallelTrainer(config: solo, group: alone, blasThreads: blasThreads)
            _ = try reference.run()
            figures = compare(trainer.network.parameters, reference.network.parameters)
        }
        let shared: [Double] = try world.broadcast(figures)
        let pass = agree && shared[2] <= tolerance
        return VerifyResult(ranks: world.size, steps: config.warmup + config.steps,
                            checksums: all.map(Checksum.hex), replicasAgree: agree,
                            maxAbsDifference: shared[0], maxRelativeDifference: shared[1],
                            relativeL2Difference: shared[2], tolerance: tolerance, pass: pass)
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
