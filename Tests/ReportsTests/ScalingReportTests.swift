import Foundation
@testable import Reports
import TestSupport
import Vocabulary
import XCTest

/// `vgg-dp report`'s study logic on synthetic run reports: no MPI, no runs.
final class ScalingReportTests: XCTestCase {
    // MARK: - Synthetic reports

    typealias Phases = ReportFixture.Phases

    /// A run report as rank 0 would write it; images/s = global batch / step mean.
    func report(ranks: Int, batch: Int, step: Double, sd: Double = 0, allreduce: Double = 0, exposed: Double = 0,
                straggler: Double = 1, phases: [Phases]? = nil, hosts: [String]? = nil, threads: Int = 1,
                model: VGGModel = .vgg11, mode: Mode = .train, started: String = "2026-01-01T00:00:00Z",
                command: [String]? = nil) -> RunReport {
        ReportFixture.make(model: model, mode: mode, ranks: ranks, batchPerRank: batch, step: step, sd: sd, phases: phases,
                           hosts: hosts, threads: threads, started: started, command: command,
                           allreduce: allreduce, exposed: exposed, straggler: straggler)
    }

    func run(_ r: RunReport, _ name: String? = nil) -> LoadedRun {
        LoadedRun(path: "/data/\(name ?? "ranks-\(r.ranks).json")", report: r)
    }

    /// Strong scaling, global batch 8: T = 0.8 s, 0.5 s, 0.4 s at 1, 2, 4 ranks.
    func strongRuns() -> [LoadedRun] {
        [run(report(ranks: 4, batch: 2, step: 0.4, sd: 0.02, allreduce: 0.3, exposed: 0.1, straggler: 1.2, threads: 1)),
         run(report(ranks: 1, batch: 8, step: 0.8, sd: 0.04, threads: 2)),
         run(report(ranks: 2, batch: 4, step: 0.5, sd: 0.01, allreduce: 0.2, exposed: 0.05, straggler: 1.05, threads: 1))]
    }

    // MARK: - Formulas

    func testStrongScalingSpeedupAndEfficiency() throws {
        let study = try ScalingStudy(runs: strongRuns())
        XCTAssertEqual(study.kind, .strong)
        XCTAssertEqual(study.points.map(\.ranks), [1, 2, 4], "rows sorted by rank count")
        XCTAssertEqual(study.baseline.report.ranks, 1)
        // images/s = 8 / T: 10, 16, 20.
        let ips = study.points.map(\.imagesPerSecond)
        XCTAssertEqual(ips[0], 10, accuracy: 1e-12)
        XCTAssertEqual(ips[1], 16, accuracy: 1e-12)
        XCTAssertEqual(ips[2], 20, accuracy: 1e-12)
        // Speedup = images/s ratio: 1, 1.6, 2.
        let speedup = study.points.map(\.speedup)
        XCTAssertEqual(speedup[0], 1, accuracy: 1e-12)
        XCTAssertEqual(speedup[1], 1.6, accuracy: 1e-12)
        XCTAssertEqual(speedup[2], 2.0, accuracy: 1e-12)
        // Efficiency = T1 / (N·TN): 0.8/(2·0.5) = 0.8, 0.8/(4·0.4) = 0.5.
        let eff = study.points.map { $0.efficiency! }
        XCTAssertEqual(eff[0], 1, accuracy: 1e-12)
        XCTAssertEqual(eff[1], 0.8, accuracy: 1e-12)
        XCTAssertEqual(eff[2], 0.5, accuracy: 1e-12)
        XCTAssertEqual(study.points[1].stepMean, 0.5, accuracy: 1e-12)
        XCTAssertEqual(study.points[1].stepSD, 0.01, accuracy: 1e-12)
        XCTAssertTrue(study.notes.isEmpty, "\(study.notes)")
    }

    func testStrongEfficiencyGeneralisesToALargerBaseline() throws {
        // Baseline 2 ranks at 0.5 s; 8 ranks at 0.25 s: 0.5·2 / (8·0.25) = 0.5; speedup 2.
        let study = try ScalingStudy(runs: [run(report(ranks: 8, batch: 2, step: 0.25)),
                                            run(report(ranks: 2, batch: 8, step: 0.5))])
        XCTAssertEqual(study.kind, .strong)
        XCTAssertEqual(study.points[1].efficiency!, 0.5, accuracy: 1e-12)
        XCTAssertEqual(study.points[1].speedup, 2.0, accuracy: 1e-12)
        XCTAssertEqual(ScalingStudy.efficiency(study.runs[1].report, base: study.runs[0].report, kind: .strong)!, 0.5, accuracy: 1e-12)
    }

    func testWeakScalingSpeedupAndEfficiency() throws {
        // Batch 4 per rank: T = 0.4, 0.5, 0.8 s at 1, 2, 4 ranks → images/s 10, 16, 20.
        let study = try ScalingStudy(runs: [run(report(ranks: 2, batch: 4, step: 0.5)),
                                            run(report(ranks: 4, batch: 4, step: 0.8)),
                                            run(report(ranks: 1, batch: 4, step: 0.4))])
        XCTAssertEqual(study.kind, .weak)
        XCTAssertEqual(study.points.map(\.ranks), [1, 2, 4])
        // Efficiency = T1 / TN: 0.8, 0.5. Speedup = images/s ratio: 1.6, 2.
        XCTAssertEqual(study.points[1].efficiency!, 0.8, accuracy: 1e-12)
        XCTAssertEqual(study.points[2].efficiency!, 0.5, accuracy: 1e-12)
        XCTAssertEqual(study.points[1].speedup, 1.6, accuracy: 1e-12)
        XCTAssertEqual(study.points[2].speedup, 2.0, accuracy: 1e-12)
        XCTAssertEqual(study.points.map(\.globalBatch), [4, 8, 16])
    }

    func testCommunicationSharesAndStraggler() throws {
        let study = try ScalingStudy(runs: strongRuns())
        let two = study.points[1], four = study.points[2]
        XCTAssertEqual(two.exposedShare, 0.05 / 0.5, accuracy: 1e-12)   // 10%
        XCTAssertEqual(two.allreduceShare, 0.2 / 0.5, accuracy: 1e-12)  // 40%
        XCTAssertEqual(four.exposedShare, 0.25, accuracy: 1e-12)
        XCTAssertEqual(four.allreduceShare, 0.75, accuracy: 1e-12)
        XCTAssertEqual(two.stragglerRatio, 1.05)
        XCTAssertEqual(four.stragglerRatio, 1.2)
        XCTAssertEqual(study.points[0].exposedShare, 0)
    }

    func testPhaseMeansAreAveragedOverRanks() throws {
        let phases = [Phases(data: 0.01, forward: 0.1, backward: 0.2, optimizer: 0.05, allreduce: 0.04, exposed: 0.02),
                      Phases(data: 0.03, forward: 0.3, backward: 0.4, optimizer: 0.15, allreduce: 0.08, exposed: 0.04)]
        let study = try ScalingStudy(runs: [run(report(ranks: 1, batch: 8, step: 1)),
                                            run(report(ranks: 2, batch: 4, step: 0.6, phases: phases))])
        let p = study.points[1]
        XCTAssertEqual(p.data, 0.02, accuracy: 1e-12)
        XCTAssertEqual(p.forward, 0.2, accuracy: 1e-12)
        XCTAssertEqual(p.backward, 0.3, accuracy: 1e-12)
        XCTAssertEqual(p.optimizer, 0.1, accuracy: 1e-12)
        XCTAssertEqual(p.allreduce, 0.06, accuracy: 1e-12)
        XCTAssertEqual(p.exposed, 0.03, accuracy: 1e-12)
    }

    // MARK: - Kind

    func testKindDetection() throws {
        let strong = strongRuns().map(\.report)
        XCTAssertEqual(try ScalingStudy.detectKind(strong).kind, .strong)

        let weak = [report(ranks: 1, batch: 4, step: 1), report(ranks: 2, batch: 4, step: 1)]
        XCTAssertEqual(try ScalingStudy.detectKind(weak).kind, .weak)

        let sweep = [report(ranks: 1, batch: 1, step: 1), report(ranks: 1, batch: 3, step: 1)]
        XCTAssertEqual(try ScalingStudy.detectKind(sweep).kind, .sweep)

        let single = try ScalingStudy.detectKind([report(ranks: 2, batch: 4, step: 1)])
        XCTAssertEqual(single.kind, .strong)
        XCTAssertNotNil(single.note, "one rank count: says that nothing scales")

        // 1×8 and 2×2: global batch 8 vs 4, batch per rank 8 vs 2.
        let neither = [report(ranks: 1, batch: 8, step: 1), report(ranks: 2, batch: 2, step: 1)]
        XCTAssertThrowsError(try ScalingStudy.detectKind(neither)) { error in
            guard case let TrainerError.usage(message) = error else { return XCTFail("not a usage error: \(error)") }
            XCTAssertTrue(message.contains("--kind strong or --kind weak"), message)
            XCTAssertEqual((error as? TrainerError)?.exitCode, 2)
        }
        XCTAssertThrowsError(try ScalingStudy(runs: neither.map { run($0) }))
        XCTAssertThrowsError(try ScalingStudy(runs: []))
    }

    func testExplicitKindIsUsedAndMismatchIsNoted() throws {
        // Strong data read as weak: efficiency T_b / T_N = 0.8 / 0.4 = 2, with a note.
        let study = try ScalingStudy(runs: strongRuns(), kind: .weak)
        XCTAssertEqual(study.kind, .weak)
        XCTAssertEqual(study.points[2].efficiency!, 2.0, accuracy: 1e-12)
        XCTAssertTrue(study.notes.contains { $0.contains("batch per rank differs") }, "\(study.notes)")

        let neither = [run(report(ranks: 1, batch: 8, step: 1)), run(report(ranks: 2, batch: 2, step: 1))]
        XCTAssertEqual(try ScalingStudy(runs: neither, kind: .strong).kind, .strong)
    }

    func testMixedModelsAreNoted() throws {
        let study = try ScalingStudy(runs: [run(report(ranks: 1, batch: 8, step: 1, model: .vgg11)),
                                            run(report(ranks: 2, batch: 4, step: 1, model: .vgg16))])
        XCTAssertTrue(study.notes.contains { $0.hasPrefix("model differs") }, "\(study.notes)")
        XCTAssertTrue(study.markdown().contains("## Notes"))
    }

    // MARK: - Rendering

    func testMarkdownHeaderTableAndCommands() throws {
        var runs = strongRuns()
        runs[1].report.command = ["/opt/vgg-dp", "--model", "vgg11", "--global-batch", "8", "--report", "/tmp/my run.json"]
        let study = try ScalingStudy(runs: runs)
        let md = study.markdown()
        XCTAssertTrue(md.hasPrefix("# Strong scaling: vgg11 at 32×32, mode train\n"), md)
        XCTAssertTrue(md.contains("- model: vgg11, image size 32×32, width ÷16, 10 classes, 113,090 parameters"), md)
        XCTAssertTrue(md.contains("kind: strong scaling (global batch 8 split over the ranks)"), md)
        XCTAssertTrue(md.contains("- hosts: box (1 host)"), md)
        XCTAssertTrue(md.contains("BLAS: OpenBLAS Haswell, threads per rank 2 (1 rank), 1 (2 ranks), 1 (4 ranks)"), md)
        XCTAssertTrue(md.contains("| ranks | batch/rank | global batch | hosts | BLAS threads | step ms (mean ± sd) | images/s | speedup | efficiency | exposed comm | allreduce | straggler |"), md)
        XCTAssertTrue(md.contains("| 1 | 8 | 8 | 1 | 2 | 800.00 ± 40.00 | 10.00 | 1.00× | 100.0% | 0.0% | 0.0% | 1.000 |"), md)
        XCTAssertTrue(md.contains("| 2 | 4 | 8 | 1 | 1 | 500.00 ± 10.00 | 16.00 | 1.60× | 80.0% | 10.0% | 40.0% | 1.050 |"), md)
        XCTAssertTrue(md.contains("| 4 | 2 | 8 | 1 | 1 | 400.00 ± 20.00 | 20.00 | 2.00× | 50.0% | 25.0% | 75.0% | 1.200 |"), md)
        XCTAssertTrue(md.contains("/opt/vgg-dp --model vgg11 --global-batch 8 --report '/tmp/my run.json'"), md)
        XCTAssertFalse(md.contains("## Plots"), "no plots unless given")
        XCTAssertFalse(md.contains("## Notes"), "consistent runs: no notes")

        let withPlots = study.markdown(plots: [.init(title: "scaling throughput", path: "scaling-throughput.png"),
                                               .init(title: "scaling efficiency", path: "plots/scaling efficiency.png")])
        XCTAssertTrue(withPlots.contains("## Plots"))
        XCTAssertTrue(withPlots.contains("![scaling throughput](scaling-throughput.png)"))
        XCTAssertTrue(withPlots.contains("![scaling efficiency](plots/scaling%20efficiency.png)"))
    }

    func testWeakMarkdownNamesTheKind() throws {
        let study = try ScalingStudy(runs: [run(report(ranks: 1, batch: 4, step: 0.4)),
                                            run(report(ranks: 2, batch: 4, step: 0.5, hosts: ["a", "b"]))])
        let md = study.markdown()
        XCTAssertTrue(md.hasPrefix("# Weak scaling:"), md)
        XCTAssertTrue(md.contains("kind: weak scaling (batch 4 per rank); efficiency = T_b / T_N"), md)
        XCTAssertTrue(md.contains("| 2 | 4 | 8 | 2 | 1 | 500.00 ± 0.00 | 16.00 | 1.60× | 80.0% |"), md)
        XCTAssertTrue(md.contains("- hosts: a, b, box (3 hosts in all)"), md)
    }

    func testScalingCSV() throws {
        var runs = strongRuns()
        runs[0] = LoadedRun(path: "/data/four, ranks.json", report: runs[0].report)
        let csv = try ScalingStudy(runs: runs).csv()
        let lines = csv.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        XCTAssertEqual(lines.count, 5, "header, three rows, trailing newline")
        XCTAssertEqual(lines[4], "")
        XCTAssertEqual(lines[0], """
            ranks,batch_per_rank,global_batch,hosts,blas_threads,step_mean_s,step_sd_s,images_per_second,speedup,efficiency,\
            exposed_share,allreduce_share,straggler_ratio,data_s,forward_s,backward_s,optimizer_s,allreduce_s,exposed_s,\
            kind,model,image_size,mode,file
            """)
        let header = lines[0].split(separator: ",").map(String.init)
        func row(_ i: Int) -> [String: String] {
            let fields = lines[i].split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            return Dictionary(uniqueKeysWithValues: zip(header, fields))
        }
        let two = row(2)
        XCTAssertEqual(two["ranks"], "2")
        XCTAssertEqual(two["batch_per_rank"], "4")
        XCTAssertEqual(two["global_batch"], "8")
        XCTAssertEqual(two["blas_threads"], "1")
        XCTAssertEqual(Double(two["step_mean_s"]!)!, 0.5, accuracy: 1e-12)
        XCTAssertEqual(Double(two["step_sd_s"]!)!, 0.01, accuracy: 1e-12)
        XCTAssertEqual(Double(two["images_per_second"]!)!, 16, accuracy: 1e-9)
        XCTAssertEqual(Double(two["speedup"]!)!, 1.6, accuracy: 1e-12)
        XCTAssertEqual(Double(two["efficiency"]!)!, 0.8, accuracy: 1e-12)
        XCTAssertEqual(Double(two["exposed_share"]!)!, 0.1, accuracy: 1e-12)
        XCTAssertEqual(Double(two["allreduce_share"]!)!, 0.4, accuracy: 1e-12)
        XCTAssertEqual(Double(two["straggler_ratio"]!)!, 1.05, accuracy: 1e-12)
        XCTAssertEqual(two["kind"], "strong")
        XCTAssertEqual(two["model"], "vgg11")
        XCTAssertEqual(two["image_size"], "32")
        XCTAssertEqual(two["mode"], "train")
        XCTAssertEqual(two["file"], "ranks-2.json")
        // A file name with a comma is quoted (RFC 4180).
        XCTAssertTrue(lines[3].hasSuffix(",\"four, ranks.json\""), lines[3])
    }

    func testSweepTableAndCSV() throws {
        // One rank, batch 3, 1, 2: sorted by batch size; the notebook's four columns.
        // Times are binary fractions so that the CSV text is exact.
        let study = try ScalingStudy(runs: [run(report(ranks: 1, batch: 3, step: 0.375, sd: 0.125, mode: .forwardBackward), "b3.json"),
                                            run(report(ranks: 1, batch: 1, step: 0.125, sd: 0.0, mode: .forwardBackward), "b1.json"),
                                            run(report(ranks: 1, batch: 2, step: 0.25, sd: 0.0625, mode: .forwardBackward), "b2.json")])
        XCTAssertEqual(study.kind, .sweep)
        XCTAssertEqual(study.points.map(\.batchPerRank), [1, 2, 3])
        XCTAssertNil(study.points[1].efficiency)
        XCTAssertEqual(study.csv(), """
            batch_size,mean,sd,images_per_second
            1,0.125,0.0,8.0
            2,0.25,0.0625,8.0
            3,0.375,0.125,8.0

            """)
        let md = study.markdown()
        XCTAssertTrue(md.hasPrefix("# Batch-size sweep: vgg11 at 32×32, mode forward-backward"), md)
        // batch 2: 0.25 s, 125 ms/image, 8 images/s, 2× the batch-1 time.
        XCTAssertTrue(md.contains("| 2 | 1 | 0.2500 ± 0.0625 | 125.00 | 8.00 | 2.00 |"), md)
    }

    // MARK: - Loading and helpers

    func testLoadRoundTripAndBadInput() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("scaling-report-tests-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        var paths: [String] = []
        for r in strongRuns() {
            let p = dir.appendingPathComponent("ranks-\(r.report.ranks).json").path
            try r.report.write(to: p)
            paths.append(p)
        }
        let loaded = try LoadedRun.load(paths: paths)
        XCTAssertEqual(loaded.map(\.report.ranks), [4, 1, 2])
        XCTAssertEqual(loaded[0].name, "ranks-4.json")
        let study = try ScalingStudy(runs: loaded)
        XCTAssertEqual(study.points[2].efficiency!, 0.5, accuracy: 1e-12)
        // The file uses snake_case keys.
        let text = try String(contentsOfFile: paths[0], encoding: .utf8)
        XCTAssertTrue(text.contains("\"exposed_seconds_per_step\""))

        func assertUsage(_ paths: [String], mentions: String, file: StaticString = #filePath, line: UInt = #line) {
            XCTAssertThrowsError(try LoadedRun.load(paths: paths), file: file, line: line) { error in
                guard case let TrainerError.usage(message) = error else {
                    return XCTFail("not a usage error: \(error)", file: file, line: line)
                }
                XCTAssertTrue(message.contains(mentions), message, file: file, line: line)
            }
        }
        assertUsage([dir.appendingPathComponent("missing.json").path], mentions: "missing.json: no such file")
        let bad = dir.appendingPathComponent("bad.json").path
        try Data("{ not json".utf8).write(to: URL(fileURLWithPath: bad))
        assertUsage([bad], mentions: "bad.json is not a vgg-dp run report (not valid JSON)")
        let partial = dir.appendingPathComponent("partial.json").path
        try Data(#"{"schema": 1, "model": "vgg11"}"#.utf8).write(to: URL(fileURLWithPath: partial))
        assertUsage([partial], mentions: "missing key")
        assertUsage([dir.path], mentions: "is a folder")
        assertUsage([], mentions: "at least one")
    }

    func testRelativePathAndQuoting() {
        XCTAssertEqual(relativePath(to: "/r/out/a.png", fromFolder: "/r/out"), "a.png")
        XCTAssertEqual(relativePath(to: "/r/out/plots/a.png", fromFolder: "/r/out"), "plots/a.png")
        XCTAssertEqual(relativePath(to: "/r/plots/a.png", fromFolder: "/r/out/md"), "../../plots/a.png")
        XCTAssertEqual(relativePath(to: "/r/out/./x/../a.png", fromFolder: "/r/out/"), "a.png")
        XCTAssertEqual(Markdown.shellQuote("--batch-size=4"), "--batch-size=4")
        XCTAssertEqual(Markdown.shellQuote("a b"), "'a b'")
        XCTAssertEqual(Markdown.shellQuote("it's"), "'it'\\''s'")
        XCTAssertEqual(Markdown.shellQuote(""), "''")
        XCTAssertEqual(CSV.field("a\"b"), "\"a\"\"b\"")
        XCTAssertEqual(CSV.field("plain"), "plain")
    }
}
