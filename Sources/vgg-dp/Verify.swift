import ArgumentParser
import Foundation
import Trainer
import Vocabulary

struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check replica consistency and N-rank ≡ 1-rank equivalence; exit 0 only on PASS.")

    @OptionGroup var options: RunOptions
    @Option(help: "Largest accepted ‖w_N − w_1‖/‖w_1‖ after the run.")
    var tolerance: Double = 1e-5

    func run() throws {
        try withWorld { world in
            var config = try options.config(ranks: world.size)
            config.mode = .train
            let threads = blasThreads(requested: options.threads, world: world)
            try options.resolveExchange(&config, world: world, threads: threads)
            let r = try Trainer.Verify.run(config: config, world: world, blasThreads: threads, tolerance: tolerance)
            if world.isRoot {
                printOut("""
                verify: \(config.network.model.rawValue) \(config.network.imageSize)×\(config.network.imageSize), \
                \(r.ranks) ranks × \(config.batchPerRank) vs 1 rank × \(config.batchPerRank * r.ranks), \(r.steps) train steps
                replicas: \(r.replicasAgree ? "identical" : "DIFFER") (checksums \(r.checksums.joined(separator: " ")))
                equivalence: max |Δw| = \(String(format: "%.3e", r.maxAbsDifference)), \
                max |Δw|/max|w| = \(String(format: "%.3e", r.maxRelativeDifference)), \
                ‖Δw‖/‖w‖ = \(String(format: "%.3e", r.relativeL2Difference)) (tolerance \(String(format: "%.1e", r.tolerance)))
                \(r.pass ? "PASS" : "FAIL")
                """)
            }
            if !r.pass { throw TrainerError.failed("verification failed") }
        }
    }
}
