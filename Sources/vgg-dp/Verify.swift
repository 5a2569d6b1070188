import ArgumentParser
import Foundation
import Comm
import Trainer
import Vocabulary

struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check replica consistency and N-rank ≡ 1-rank equivalence; exit 0 only on PASS.")

    @OptionGroup var options: RunOptions
    @Option(help: "Largest accepted ‖w_N − w_1‖/‖w_1‖ after the run.")
    var tolerance: Double = 1e-5

    func run() throws {
        // Before MPI starts: bad input costs nothing.
        guard tolerance.isFinite, tolerance >= 0 else {
            throw TrainerError.usage("--tolerance must be a finite number ≥ 0, got \(tolerance)")
        }
        guard options.mode == .train else {
            throw TrainerError.usage("verify always trains (it compares the weights after training steps): --mode \(options.mode.rawValue) does not apply; drop it")
        }
        try withWorld { world in
            var config = try options.config(ranks: world.size)
            config.mode = .train
            let threads = blasThreads(requested: options.threads, world: world)
            try options.resolveExchange(&config, world: world, threads: threads)
            let r = try Trainer.Verify.run(config: config, world: world, blasThreads: threads, tolerance: tolerance)
            if world.isRoot, let c = r.compression, let s = r.lossStart, let e = r.lossEnd,
               let rs = r.referenceLossStart, let re = r.referenceLossEnd {
                let f = { (x: Double) in String(format: "%.4f", x) }
                printOut("""
                verify: \(config.network.model.rawValue) \(config.network.imageSize)×\(config.network.imageSize), \
                \(r.ranks) ranks × \(config.batchPerRank) with \(c) vs 1 rank × \(config.batchPerRank * r.ranks) uncompressed, \(r.steps) train steps
                replicas: \(r.replicasAgree ? "identical" : "DIFFER") (checksums \(r.checksums.joined(separator: " ")))
                weights: \(r.ranks) ranks and one rank differ by design under compression (‖Δw‖/‖w‖ = \(String(format: "%.3e", r.relativeL2Difference)), not checked)
                loss (first → last quarter of the timed steps): compressed \(f(s)) → \(f(e)), uncompressed \(f(rs)) → \(f(re)); \
                accepted: compressed end ≤ \(f(1 + VerifyResult.lossTolerance)) × uncompressed end
                \(r.pass ? "PASS" : "FAIL")
                """)
            } else if world.isRoot {
                printOut("""
                verify: \(config.network.model.rawValue) \(config.network.imageSize)×\(config.network.imageSize), \
                \(r.ranks) ranks × \(config.batchPerRank) vs 1 rank × \(config.batchPerRank * r.ranks), \(r.steps) train steps
                replicas: \(r.replicasAgree ? "identical" : "DIFFER") (checksums \(r.checksums.joined(separator: " ")))
                equivalence: max |Δw| = \(String(format: "%.3e", r.maxAbsDifference)), \
                max |Δw|/max|w| = \(String(format: "%.3e", r.maxRelativeDifference)), \
                ‖Δw‖/‖w‖ = \(String(format: "%.3e", r.relativeL2Difference)) (tolerance \(String(format: "%.1e", r.tolerance)))
                \(r.pass ? "PASS" : "FAIL")
                """)
                if let why = sixteenBitNote(config, world: world, result: r) { printOut(why) }
            }
            if !r.pass { throw TrainerError.failed("verification failed") }
        }
    }

    /// Why a 16-bit exchange fails the equivalence check, or why it is not
    /// the reason: 16-bit gradients travel only between ranks that do not
    /// share memory (every pair with --exchange allreduce; only across hosts
    /// with host-shared, which sums a host's gradients in fp32).
    func sixteenBitNote(_ config: TrainConfig, world: World, result r: VerifyResult) -> String? {
        let dtype = config.allreduceDType
        guard dtype != .fp32, r.replicasAgree, r.relativeL2Difference > r.tolerance, world.size > 1 else { return nil }
        let hosts = Set(world.hostNames).count
        guard config.exchange != .hostShared || hosts > 1 else {
            return """
                note: --allreduce-dtype \(dtype.rawValue) is not the cause: with the host-shared exchange on one host no gradient \
                travels between hosts, and the host's gradients are summed in fp32 in shared memory
                """
        }
        // Unit roundoff of the 16-bit type: 2^-8 (bf16, 8 significant bits), 2^-11 (fp16).
        let roundoff = dtype == .bf16 ? 0x1p-8 : 0x1p-11
        let suggested = Verify.suggestedTolerance(measured: r.relativeL2Difference)
        return """
            note: the gradients travelled between ranks as \(dtype.rawValue) (unit roundoff \(String(format: "%.1e", roundoff)); \
            each addition of the reduction rounds back to 16 bits), so the \(r.ranks)-rank weights differ from one rank's \
            by 16-bit rounding, not float reordering alone: ‖Δw‖/‖w‖ = \(String(format: "%.3e", r.relativeL2Difference)) \
            against the tolerance \(String(format: "%.1e", r.tolerance)). Check the exchange exactly with \
            --allreduce-dtype fp32; to accept \(dtype.rawValue) rounding over these \(r.steps) steps, use --tolerance \
            \(String(format: "%.0e", suggested)) or more
            """
    }

    /// The next power of ten at or above twice `measured`: room for the
    /// run-to-run spread of the rounding, not a bound on it.
    static func suggestedTolerance(measured: Double) -> Double {
        pow(10, (log10(max(measured, 1e-30) * 2)).rounded(.up))
    }
}
