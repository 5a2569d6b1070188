import Foundation
import TestSupport
@testable import Trainer
import VGGEngine
import XCTest

/// Rank 0's reporting: the gather of unequal per-rank data, the trace file,
/// the CSV summary and the report built from all ranks' timings.
final class ReportingTests: XCTestCase {
    let tiny = Launcher.tiny

    func testGatherReceivesEveryRanksStepsExactlyWithDifferentCounts() throws {
        let r = try Launcher.run(["selftest", "gather"], ranks: 3)
        XCTAssertEqual(r.status, 0, r.all)
        XCTAssertTrue(r.stdout.contains("gather: 3 ranks, steps per rank 2 3 4: exact"), r.all)
    }

    func testPackedTimingsRoundTrip() {
        var s = StepTimes()
        s.wall = 1.5; s.exposed = 0.25; s.loss = 2.3
        let t = RankTimings(steps: [s, StepTimes()], layerMeans: [1, 2, 3], bucketMeans: [0.5],
                            peakRssBytes: 123_456, peakGflops: 80.5, timeline: [9, 8, 7])
        XCTAssertEqual(RankTimings(packed: t.packed), t)
    }

    /// Two ranks with hand-made step times: the report's statistics.
    func testReportFromRanksWithDifferentStepCounts() {
        var config = TrainConfig()
        config.network = NetworkSpec(model: .vgg11, imageSize: 32, classes: 10, widthDivisor: 16)
        config.batchPerRank = 2
        config.steps = 3
        func rank(_ walls: [Double], losses: [Double]) -> RankTimings {
            let steps = zip(walls, losses).map { w, l -> StepTimes in
                var s = StepTimes(); s.wall = w; s.loss = l; s.exposed = w / 10; return s
            }
            return RankTimings(steps: steps, layerMeans: [Double](repeating: 0, count: 4 * config.network.layers.count),
                               bucketMeans: [0], peakRssBytes: 1 << 20, peakGflops: 100)
        }
        let ranks = [rank([1, 2, 3], losses: [4, 3, 2]), rank([2, 4], losses: [6, 5])]
        let env = RunEnvironment(hosts: ["a", "b"], blasThreads: 1, blasCore: "Haswell", blasConfig: "", openblasCoretype: nil,
                                 mpiLibrary: "", mpiThreadLevel: "", commWait: "none")
        let r = RunReport.make(config: config, plan: BucketPlan(spec: config.network, bucketMB: 25), ranks: ranks,
                               environment: env, checksum: 0xABC, command: ["vgg-dp"], startedAt: "1970-01-01T00:00:00Z")
        // Rank means: 2 and 3; the slowest rank (mean 3) sets the step time.
        XCTAssertEqual(r.stepSeconds.mean, 3)
        XCTAssertEqual(r.stepSeconds.sd, 1)
        XCTAssertEqual(r.imagesPerSecond, 4.0 / 3.0, accuracy: 1e-12)
        XCTAssertEqual(r.stragglerRatio, 3.0 / 2.5, accuracy: 1e-12)
        XCTAssertEqual(r.lossPerStep, [5, 4], "only the steps every rank has")
        XCTAssertEqual(r.exposedSecondsPerStep, (0.2 + 0.3) / 2, accuracy: 1e-12)
        XCTAssertEqual(r.perRank.map(\.host), ["a", "b"])
        XCTAssertEqual(r.parameterChecksum, "0000000000000abc")
        XCTAssertEqual(r.peakGflopsPerRank, 100)
        XCTAssertEqual(r.gflopsPerSecond, 4.0 / 3.0 * Double(config.network.forwardBackwardFLOPsPerImage) / 1e9, accuracy: 1e-9)
    }

    func testTwoRankTraceIsValidJSONWithEveryLayerAndBucket() throws {
        let folder = Launcher.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let trace = folder.appendingPathComponent("trace.json").path
        let csv = folder.appendingPathComponent("runs.csv").path
        for _ in 0..<2 {
            let r = try Launcher.run(tiny + ["--batch-size", "2", "--warmup", "1", "--steps", "3", "--bucket-mb", "0",
                                             "--trace", trace, "--csv", csv, "--no-peak-probe"], ranks: 2)
            XCTAssertEqual(r.status, 0, r.all)
        }
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: trace))) as? [String: Any]
        let events = try XCTUnwrap(json?["traceEvents"] as? [[String: Any]])
        let slices = events.filter { $0["ph"] as? String == "X" }
        func count(_ cat: String, pid: Int, tid: Int) -> Int {
            slices.filter { $0["cat"] as? String == cat && $0["pid"] as? Int == pid && $0["tid"] as? Int == tid }.count
        }
        let layers = NetworkSpec(model: .vgg11, imageSize: 32, classes: 10, widthDivisor: 16).layers.count // 18
        for rank in 0..<2 {
            XCTAssertEqual(count("step", pid: rank, tid: 0), 3)
            XCTAssertEqual(count("forward", pid: rank, tid: 0), 3 * layers)
            XCTAssertEqual(count("backward", pid: rank, tid: 0), 3 * layers)
            XCTAssertEqual(count("allreduce", pid: rank, tid: 1), 3 * 11, "one bucket per layer with parameters")
        }
        XCTAssertTrue(slices.contains { $0["name"] as? String == "conv1_1 fwd" })
        XCTAssertTrue(slices.allSatisfy { ($0["dur"] as? Double ?? -1) >= 0 && ($0["ts"] as? Double ?? -1) >= 0 })
        let names = events.filter { $0["ph"] as? String == "M" && $0["name"] as? String == "thread_name" }
        XCTAssertEqual(names.count, 4)

        // Two runs appended: a header and two rows.
        let lines = try String(contentsOfFile: csv, encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines.count, 3)
        XCTAssertEqual(String(lines[0]), RunReport.csvHeader)
        XCTAssertTrue(lines[1].contains(",vgg11,32,10,16,train,2,1,2,4,"), String(lines[1]))
    }
}
