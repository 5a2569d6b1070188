import Foundation
import Reports
import TestSupport
@testable import Trainer
import VGGEngine
import Vocabulary
import XCTest

/// Rank 0's reporting: the gather of unequal per-rank data, the trace file,
/// the CSV summary and the report built from all ranks' timings; and the
/// report parts that need the engine or the built binary (the report
/// library's own tests are in ReportsTests).
final class ReportingTests: XCTestCase {
    let tiny = Launcher.tiny

    func testGatherReceivesEveryRanksStepsExactlyWithDifferentCounts() throws {
        let r = try Launcher.run(["selftest", "gather"], ranks: 3)
        XCTAssertEqual(r.status, 0, r.all)
        XCTAssertTrue(r.stdout.contains("gather: 3 ranks, steps per rank 2 3 4: exact"), r.all)
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
            return RankTimings(steps: steps, layerMeans: [LayerTimes](repeating: LayerTimes(), count: config.network.layers.count),
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
            // The allreduce exchange: one slice per bucket's allreduce on the communication row.
            let r = try Launcher.run(tiny + ["--batch-size", "2", "--warmup", "1", "--steps", "3", "--bucket-mb", "0",
                                             "--exchange", "allreduce", "--trace", trace, "--csv", csv, "--no-peak-probe"],
                                     ranks: 2)
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

    /// The baselines' reports carry vgg-dp's own FLOP and parameter counts
    /// for VGG-16 at 224 (the rest of that report is checked in ReportsTests).
    func testBaselineCountsAreVGGDPsOwn() throws {
        let folder = Launcher.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("tf.json").path
        try Data(ReportFixture.baselineJSON.utf8).write(to: URL(fileURLWithPath: path))
        let r = try RunReport.read(from: path)
        let spec = NetworkSpec(model: .vgg16, imageSize: 224, classes: 1000)
        XCTAssertEqual(r.forwardFlopsPerImage, spec.forwardFLOPsPerImage)
        XCTAssertEqual(r.stepFlopsPerImage, spec.forwardBackwardFLOPsPerImage)
        XCTAssertEqual(r.parameters, spec.parameterCount)
        XCTAssertEqual(r.gflopsPerSecond, 16 / 0.6 * Double(spec.forwardBackwardFLOPsPerImage) / 1e9, accuracy: 1e-6)
    }

    /// What each convolution ran is recorded typed, from the engine's rule.
    func testReportRecordsEachConvolutionsAlgorithm() {
        var config = TrainConfig()
        config.network = NetworkSpec(model: .vgg11, imageSize: 32, classes: 10, widthDivisor: 16)
        config.allreduceDType = .bf16
        let layers = config.network.layers
        let timings = RankTimings(steps: [StepTimes()], layerMeans: [], bucketMeans: [], peakRssBytes: 0, peakGflops: 0)
        let env = RunEnvironment(hosts: ["a"], blasThreads: 1, blasCore: "Haswell", blasConfig: "", openblasCoretype: nil,
                                 mpiLibrary: "", mpiThreadLevel: "", commWait: "none")
        let plan = BucketPlan(spec: config.network, bucketMB: 0)
        let r = RunReport.make(config: config, plan: plan, ranks: [timings], environment: env, checksum: 0, command: [],
                               startedAt: "")
        XCTAssertEqual(r.conv, .auto)
        XCTAssertEqual(r.allreduceDtype, .bf16)
        let convs = layers.compactMap { s -> RunReport.ConvChoice? in
            guard case let .conv(name, c, _, h, w) = s else { return nil }
            return .init(layer: name, algorithm: ConvAlgorithm.auto.resolved(inChannels: c, height: h, width: w))
        }
        XCTAssertEqual(r.convPerLayer, convs)
        XCTAssertEqual(r.convPerLayer?.first?.algorithm, .winograd4, "32 pixels, 3 channels in")
        // The report's buckets are the plan's, with names.
        XCTAssertEqual(r.buckets.map(\.bucket), plan.buckets)
        XCTAssertEqual(r.buckets.map(\.layerNames), plan.buckets.map { $0.layers.map { layers[$0].name } })
    }

    /// `vgg-dp report` on runs of two tools picks the comparison by itself,
    /// writes CSV and Markdown, and refuses --plots.
    func testReportCommandComparesRunsOfDifferentTools() throws {
        let folder = Launcher.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let tf = folder.appendingPathComponent("tf.json").path
        let vgg = folder.appendingPathComponent("vgg.json").path
        try Data(ReportFixture.baselineJSON.utf8).write(to: URL(fileURLWithPath: tf))
        var mine = ReportFixture.make(model: .vgg16, imageSize: 224, classes: 1000, widthDivisor: 1, mode: .forwardBackward,
                                      objective: nil, batchPerRank: 16, step: 0.8, sd: 0.1, threads: 2,
                                      forwardFlops: 30_940_528_640, stepFlops: 92_648_177_664,
                                      openblasCoretype: "Haswell", peakRssBytes: 2_048 << 20)
        mine.conv = .auto
        try mine.write(to: vgg)
        let csv = folder.appendingPathComponent("compare.csv").path
        let r = try Launcher.run(["report", tf, vgg, "--csv", csv], timeout: 60)
        XCTAssertEqual(r.status, 0, r.all)
        XCTAssertTrue(r.stdout.hasPrefix("# Comparison: vgg16 at 224×224, vgg-dp vs tensorflow\n"), r.stdout)
        XCTAssertTrue(r.stdout.contains("| 20.00 | 1853.0 | 2,048 | 0.75× | 0.67× | - | - | - |"), r.stdout)
        let lines = try String(contentsOfFile: csv, encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines.count, 3)
        XCTAssertTrue(lines[1].hasPrefix("vgg-dp,"), String(lines[1]))

        let plots = try Launcher.run(["report", "--kind", "compare", tf, vgg, "--plots", folder.path], timeout: 60)
        XCTAssertNotEqual(plots.status, 0)
        XCTAssertTrue(plots.stderr.contains("--plots is not available for a comparison"), plots.all)
    }
}
