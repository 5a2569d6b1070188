import ArgumentParser
import Comm
import Foundation
import Reports
import Trainer
import Vocabulary

/// Checks of the MPI plumbing that need real ranks, for the test suite.
struct SelfTest: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "selftest",
        abstract: "Checks of the MPI plumbing for the test suite (run under mpirun).",
        shouldDisplay: false)

    @Argument(help: "gather: ranks record different numbers of steps; rank 0 must receive each exactly.")
    var check: String

    func run() throws {
        guard check == "gather" else { throw TrainerError.usage("unknown self-test \(check); known: gather") }
        try withWorld { world in
            // Rank r records r + 2 steps; every value encodes (rank, step, field).
            func timings(rank r: Int) -> RankTimings {
                let steps = (0..<(r + 2)).map { s -> StepTimes in
                    var t = StepTimes()
                    t.wall = Double(r) + Double(s) / 100
                    t.forward = Double(1000 * r + s)
                    t.loss = Double(r * 10 + s)
                    return t
                }
                return RankTimings(steps: steps, layerMeans: [LayerTimes(forward: Double(r), backward: Double(-r))], bucketMeans: [Double(r) / 7],
                                   peakRssBytes: 1000 + r, peakGflops: Double(r) * 1.5, timeline: [Double](repeating: Double(r), count: r))
            }
            let received = try world.gather(timings(rank: world.rank))
            guard let all = received else { return }
            let expected = (0..<world.size).map { timings(rank: $0) }
            let ok = all == expected
            printOut("gather: \(world.size) ranks, steps per rank \(all.map { String($0.steps.count) }.joined(separator: " ")): \(ok ? "exact" : "MISMATCH")")
            if !ok { throw TrainerError.failed("gathered timings differ from what the ranks sent") }
        }
    }
}
