import Foundation
@testable import Reports
import TestSupport
import Vocabulary
import XCTest

/// `vgg-dp report --kind compare` on hand-written reports of vgg-dp and of the
/// TensorFlow / PyTorch baselines (scripts/baselines/): no runs, no frameworks.
final class ComparisonTests: XCTestCase {
    // MARK: - Synthetic reports

    /// A one-run report: images/s = global batch / step mean; the step summary
    /// is two steps at mean ± sd, so the median is the mean.
    func report(tool: String = "vgg-dp", mode: Mode = .forwardBackward, batch: Int = 16, threads: Int = 1,
                ranks: Int = 1, step: Double, sd: Double = 0.1, rssMiB: Int, core: String = "Haswell",
                coretype: String? = "Haswell", chosen: Bool = false, conv: ConvAlgorithm? = .auto,
                imageSize: Int = 224, overlap: Bool = true) -> RunReport {
        var r = ReportFixture.make(
            tool: tool, model: .vgg16, imageSize: imageSize, classes: 1000, widthDivisor: 1, mode: mode, objective: nil,
            ranks: ranks, batchPerRank: batch, step: step, sd: sd, threads: threads, command: [tool, "--batch-size", "\(batch)"],
            warmup: 1, steps: 2, parameters: 138_357_544, forwardFlops: 30_940_528_640,
            stepFlops: mode == .forward ? 30_940_528_640 : 92_648_177_664, blasCore: core, blasConfig: "test",
            openblasCoretype: coretype, mpiLibrary: "none", mpiThreadLevel: "none", overlap: overlap, bucketMb: 0,
            peakRssBytes: rssMiB << 20, checksum: "")
        r.conv = tool == "vgg-dp" ? conv : nil
        if chosen { r.blasKernelChoice = "chosen by vgg-dp" }
        return r
    }

    func run(_ r: RunReport, _ name: String) -> LoadedRun { LoadedRun(path: "/runs/\(name)", report: r) }

    /// What scripts/compare.sh produces, in shuffled order: forward-backward
    /// batch 16 on 1 thread for all three tools (vgg-dp on two kernels), forward
    /// batch 32 for vgg-dp and TensorFlow, and vgg-dp training on 1 and 2 ranks.
    func compareRuns() -> [LoadedRun] {
        [run(report(mode: .train, ranks: 2, step: 8.8, rssMiB: 2_400), "vggdp-train-r2.json"),
         run(report(tool: "pytorch", step: 6.4, rssMiB: 2_500, core: "oneDNN v3.13.3 jit:avx512_core + MKL", coretype: nil), "torch-fb16.json"),
         run(report(mode: .forward, batch: 32, step: 4.0, rssMiB: 1_200), "vggdp-f32.json"),
         run(report(tool: "tensorflow", step: 7.2, rssMiB: 3_000, core: "oneDNN v3.7.3 brg_conv_fwd:avx512_core", coretype: nil), "tf-fb16.json"),
         run(report(step: 8.0, rssMiB: 2_250), "vggdp-fb16.json"),
         run(report(tool: "tensorflow", mode: .forward, batch: 32, step: 5.0, rssMiB: 1_500, core: "oneDNN v3.7.3 brg_conv_fwd:avx512_core", coretype: nil), "tf-f32.json"),
         run(report(step: 6.0, rssMiB: 2_250, core: "SkylakeX", coretype: nil, chosen: true), "vggdp-unset-fb16.json"),
         run(report(mode: .train, step: 8.0, rssMiB: 2_300), "vggdp-train-r1.json")]
    }

    // MARK: - Rows and ratios

    func testRowsAreOrderedByCaseThenTool() throws {
        let c = try Comparison(runs: compareRuns())
        XCTAssertEqual(c.rows.map(\.file), [
            "vggdp-fb16.json", "vggdp-unset-fb16.json", "tf-fb16.json", "torch-fb16.json",
            "vggdp-f32.json", "tf-f32.json",
            "vggdp-train-r1.json", "vggdp-train-r2.json",
        ])
        XCTAssertEqual(c.rows.map(\.tool), ["vgg-dp", "vgg-dp", "tensorflow", "pytorch", "vgg-dp", "tensorflow", "vgg-dp", "vgg-dp"])
        let first = c.rows[0]
        XCTAssertEqual(first.mode, "forward-backward")
        XCTAssertEqual(first.batchPerRank, 16)
        XCTAssertEqual(first.threads, 1)
        XCTAssertEqual(first.stepMedian, 8.0, accuracy: 1e-12)
        XCTAssertEqual(first.stepMean, 8.0, accuracy: 1e-12)
        XCTAssertEqual(first.stepSD, 0.1, accuracy: 1e-12)
        XCTAssertEqual(first.imagesPerSecond, 2.0, accuracy: 1e-12)
        XCTAssertEqual(first.gflopsPerSecond, 2.0 * 92.648177664, accuracy: 1e-9)
        XCTAssertEqual(first.peakRssMiB, 2_250, accuracy: 1e-9)
    }

    func testRatiosAgainstTensorFlowAndPyTorch() throws {
        let c = try Comparison(runs: compareRuns())
        let rows = Dictionary(uniqueKeysWithValues: c.rows.map { ($0.file, $0) })
        // vgg-dp fb16: 2.0 images/s; TensorFlow 16/7.2 = 2.222; PyTorch 16/6.4 = 2.5.
        let vgg = try XCTUnwrap(rows["vggdp-fb16.json"])
        let tf = try XCTUnwrap(vgg.vsTensorFlow)
        XCTAssertEqual(tf.against, "tf-fb16.json")
        XCTAssertEqual(tf.imagesPerSecond, 7.2 / 8.0, accuracy: 1e-12)
        XCTAssertEqual(tf.peakRss, 2_250.0 / 3_000.0, accuracy: 1e-12)
        let pt = try XCTUnwrap(vgg.vsPyTorch)
        XCTAssertEqual(pt.against, "torch-fb16.json")
        XCTAssertEqual(pt.imagesPerSecond, 6.4 / 8.0, accuracy: 1e-12)
        XCTAssertEqual(pt.peakRss, 2_250.0 / 2_500.0, accuracy: 1e-12)
        // The SkylakeX run: 16/6 images/s over TensorFlow's 16/7.2.
        XCTAssertEqual(try XCTUnwrap(rows["vggdp-unset-fb16.json"]?.vsTensorFlow).imagesPerSecond, 1.2, accuracy: 1e-12)
        // PyTorch against TensorFlow; TensorFlow against itself is 1.
        XCTAssertEqual(try XCTUnwrap(rows["torch-fb16.json"]?.vsTensorFlow).imagesPerSecond, 7.2 / 6.4, accuracy: 1e-12)
        XCTAssertEqual(try XCTUnwrap(rows["tf-fb16.json"]?.vsTensorFlow).imagesPerSecond, 1, accuracy: 1e-12)
        // Forward batch 32: only a TensorFlow run to compare with.
        let f32 = try XCTUnwrap(rows["vggdp-f32.json"])
        XCTAssertEqual(try XCTUnwrap(f32.vsTensorFlow).imagesPerSecond, 5.0 / 4.0, accuracy: 1e-12)
        XCTAssertEqual(try XCTUnwrap(f32.vsTensorFlow).peakRss, 1_200.0 / 1_500.0, accuracy: 1e-12)
        XCTAssertNil(f32.vsPyTorch)
        // Training has no baseline; two ranks are compared with one.
        let r1 = try XCTUnwrap(rows["vggdp-train-r1.json"]), r2 = try XCTUnwrap(rows["vggdp-train-r2.json"])
        XCTAssertNil(r1.vsTensorFlow)
        XCTAssertNil(r1.vsOneRank)
        XCTAssertNil(r2.vsTensorFlow)
        let scaling = try XCTUnwrap(r2.vsOneRank)
        XCTAssertEqual(scaling.against, "vggdp-train-r1.json")
        XCTAssertEqual(scaling.imagesPerSecond, (32 / 8.8) / (16 / 8.0), accuracy: 1e-12)
        XCTAssertEqual(scaling.peakRss, 2_400.0 / 2_300.0, accuracy: 1e-12)
    }

    func testRunsOfAnotherCaseDoNotMatch() throws {
        // TensorFlow at 2 threads, vgg-dp at 1: nothing to compare, and a note says so.
        let runs = [run(report(step: 8, rssMiB: 100), "v.json"),
                    run(report(tool: "tensorflow", threads: 2, step: 4, rssMiB: 100, core: "oneDNN", coretype: nil), "t.json")]
        let c = try Comparison(runs: runs)
        XCTAssertNil(c.rows.first { $0.file == "v.json" }?.vsTensorFlow)
        XCTAssertTrue(c.notes.contains("no tensorflow run of forward-backward, batch 16, 1 thread, 1 rank to compare v.json with"), "\(c.notes)")
    }

    func testKernelSaysHowOpenBLASChoseIt() {
        XCTAssertEqual(Comparison.kernel(report(step: 1, rssMiB: 1)), "OpenBLAS Haswell, OPENBLAS_CORETYPE=Haswell, conv auto")
        XCTAssertEqual(Comparison.kernel(report(step: 1, rssMiB: 1, core: "SkylakeX", coretype: nil, chosen: true)),
                       "OpenBLAS SkylakeX, OPENBLAS_CORETYPE unset (chosen by vgg-dp), conv auto")
        XCTAssertEqual(Comparison.kernel(report(step: 1, rssMiB: 1, core: "Prescott", coretype: nil, conv: nil)),
                       "OpenBLAS Prescott, OPENBLAS_CORETYPE unset")
        XCTAssertEqual(Comparison.kernel(report(tool: "tensorflow", step: 1, rssMiB: 1, core: "oneDNN v3.7.3 brg_conv_fwd:avx512_core", coretype: nil)),
                       "oneDNN v3.7.3 brg_conv_fwd:avx512_core")
    }

    // MARK: - Rendering

    /// Splits one CSV line into fields (RFC 4180 quotes).
    func fields(_ line: String) -> [String] {
        var out: [String] = [], field = "", quoted = false
        var chars = Array(line)[...]
        while let c = chars.popFirst() {
            if quoted {
                if c == "\"" {
                    if chars.first == "\"" { field.append("\""); chars.removeFirst() } else { quoted = false }
                } else { field.append(c) }
            } else if c == "\"" {
                quoted = true
            } else if c == "," {
                out.append(field); field = ""
            } else { field.append(c) }
        }
        return out + [field]
    }

    func testCSV() throws {
        let lines = try Comparison(runs: compareRuns()).csv().split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.count, 9)
        XCTAssertEqual(lines[0], Comparison.columns.joined(separator: ","))
        func row(_ i: Int) -> [String: String] {
            let f = fields(lines[i])
            XCTAssertEqual(f.count, Comparison.columns.count, lines[i])
            return Dictionary(uniqueKeysWithValues: zip(Comparison.columns, f))
        }
        func number(_ s: String?) -> Double { Double(s ?? "") ?? .nan }
        let vgg = row(1)
        XCTAssertEqual(vgg["tool"], "vgg-dp")
        XCTAssertEqual(vgg["kernel"], "OpenBLAS Haswell, OPENBLAS_CORETYPE=Haswell, conv auto")
        XCTAssertEqual(vgg["mode"], "forward-backward")
        XCTAssertEqual(vgg["batch_per_rank"], "16")
        XCTAssertEqual(vgg["threads"], "1")
        XCTAssertEqual(vgg["ranks"], "1")
        XCTAssertEqual(vgg["warmup"], "1")
        XCTAssertEqual(vgg["steps"], "2")
        XCTAssertEqual(number(vgg["step_median_s"]), 8.0, accuracy: 1e-12)
        XCTAssertEqual(number(vgg["step_sd_s"]), 0.1, accuracy: 1e-12)
        XCTAssertEqual(number(vgg["images_per_second"]), 2.0, accuracy: 1e-12)
        XCTAssertEqual(number(vgg["gflops_per_second"]), 185.296355328, accuracy: 1e-9)
        XCTAssertEqual(number(vgg["peak_rss_mib"]), 2_250, accuracy: 1e-9)
        XCTAssertEqual(number(vgg["images_per_second_vs_tensorflow"]), 0.9, accuracy: 1e-12)
        XCTAssertEqual(number(vgg["peak_rss_vs_tensorflow"]), 0.75, accuracy: 1e-12)
        XCTAssertEqual(number(vgg["images_per_second_vs_pytorch"]), 0.8, accuracy: 1e-12)
        XCTAssertEqual(number(vgg["peak_rss_vs_pytorch"]), 0.9, accuracy: 1e-12)
        XCTAssertEqual(vgg["images_per_second_vs_one_rank"], "")
        XCTAssertEqual(vgg["openblas_coretype"], "Haswell")
        XCTAssertEqual(vgg["file"], "vggdp-fb16.json")
        // The two-rank run: no baselines, images/s over one rank.
        let r2 = row(8)
        XCTAssertEqual(r2["mode"], "train")
        XCTAssertEqual(r2["global_batch"], "32")
        XCTAssertEqual(r2["images_per_second_vs_tensorflow"], "")
        XCTAssertEqual(r2["images_per_second_vs_pytorch"], "")
        XCTAssertEqual(number(r2["images_per_second_vs_one_rank"]), (32 / 8.8) / 2.0, accuracy: 1e-12)
        // A baseline's kernel is its blas_core; no OPENBLAS_CORETYPE.
        let tf = row(3)
        XCTAssertEqual(tf["tool"], "tensorflow")
        XCTAssertEqual(tf["kernel"], "oneDNN v3.7.3 brg_conv_fwd:avx512_core")
        XCTAssertEqual(tf["openblas_coretype"], "")
        XCTAssertEqual(number(tf["images_per_second_vs_pytorch"]), 6.4 / 7.2, accuracy: 1e-12)
    }

    /// A multi-rank run without overlap says so in its mode column.
    func testNoOverlapIsShown() throws {
        let runs = [run(report(mode: .train, ranks: 2, step: 8.5, rssMiB: 2_400, overlap: false), "r2-no-overlap.json"),
                    run(report(mode: .train, ranks: 2, step: 8.8, rssMiB: 2_400), "r2.json"),
                    run(report(mode: .train, step: 8.0, rssMiB: 2_300), "r1.json")]
        let rows = Dictionary(uniqueKeysWithValues: try Comparison(runs: runs).rows.map { ($0.file, $0) })
        XCTAssertEqual(rows["r2-no-overlap.json"]?.mode, "train (no overlap)")
        XCTAssertEqual(rows["r2.json"]?.mode, "train")
        XCTAssertEqual(rows["r1.json"]?.mode, "train")
        let ratio = try XCTUnwrap(rows["r2-no-overlap.json"]?.vsOneRank?.imagesPerSecond)
        XCTAssertEqual(ratio, (32 / 8.5) / 2.0, accuracy: 1e-12)
    }

    func testMarkdownTable() throws {
        let md = try Comparison(runs: compareRuns()).markdown()
        XCTAssertTrue(md.hasPrefix("# Comparison: vgg16 at 224×224, vgg-dp vs tensorflow vs pytorch\n"), md)
        XCTAssertTrue(md.contains("| tool | kernel | mode | batch/rank | threads | ranks | warm-up+steps | s/batch median | s/batch mean ± sd "
                                  + "| images/s | GFLOP/s | peak RSS MiB | images/s vs TF | RSS vs TF | images/s vs PyTorch | RSS vs PyTorch | × 1 rank |"), md)
        XCTAssertTrue(md.contains("| vgg-dp | OpenBLAS Haswell, OPENBLAS_CORETYPE=Haswell, conv auto | forward-backward | 16 | 1 | 1 | 1+2 | "
                                  + "8.000 | 8.000 ± 0.100 | 2.00 | 185.3 | 2,250 | 0.90× | 0.75× | 0.80× | 0.90× | - |"), md)
        XCTAssertTrue(md.contains("| tensorflow | oneDNN v3.7.3 brg_conv_fwd:avx512_core | forward | 32 | 1 | 1 | 1+2 | 5.000 | 5.000 ± 0.100 | 6.40 | "), md)
        XCTAssertTrue(md.contains("| vgg-dp | OpenBLAS Haswell, OPENBLAS_CORETYPE=Haswell, conv auto | train | 16 | 1 | 2 | 1+2 | "
                                  + "8.800 | 8.800 ± 0.100 | 3.64 | 336.9 | 2,400 | - | - | - | - | 1.82× |"), md)
        XCTAssertTrue(md.contains("## Ratios\n\n- forward-backward, batch 16, 1 thread, 1 rank: vgg-dp [OpenBLAS Haswell"), md)
        XCTAssertTrue(md.contains("## Runs"), md)
        // Training has no baseline by design: no note about it.
        XCTAssertFalse(md.contains("## Notes"), md)
    }

    func testRatioLines() throws {
        let lines = try Comparison(runs: compareRuns()).ratioLines()
        XCTAssertEqual(lines.count, 7, "\(lines)")
        XCTAssertEqual(lines[0], "forward-backward, batch 16, 1 thread, 1 rank: vgg-dp [OpenBLAS Haswell, OPENBLAS_CORETYPE=Haswell, conv auto] "
                       + "2.00 images/s vs tensorflow [oneDNN v3.7.3 brg_conv_fwd:avx512_core] 2.22 = **0.90×**; peak RSS 2,250 MiB vs 3,000 MiB = 0.75×")
        XCTAssertTrue(lines[1].hasPrefix("forward-backward, batch 16, 1 thread, 1 rank: vgg-dp [OpenBLAS Haswell, OPENBLAS_CORETYPE=Haswell, conv auto] "
                                         + "2.00 images/s vs pytorch [oneDNN v3.13.3 jit:avx512_core + MKL] 2.50 = **0.80×**"), lines[1])
        XCTAssertTrue(lines[2].contains("OPENBLAS_CORETYPE unset (chosen by vgg-dp)") && lines[2].contains("= **1.20×**"), lines[2])
        XCTAssertTrue(lines[4].hasPrefix("forward-backward, batch 16, 1 thread, 1 rank: pytorch [") && lines[4].contains("= **1.12×**"), lines[4])
        XCTAssertTrue(lines[5].hasPrefix("forward, batch 32, 1 thread, 1 rank: vgg-dp") && lines[5].contains("= **1.25×**; peak RSS 1,200 MiB vs 1,500 MiB = 0.80×"), lines[5])
        XCTAssertEqual(lines[6], "train, batch 16 per rank, 1 thread per rank: vgg-dp [OpenBLAS Haswell, OPENBLAS_CORETYPE=Haswell, conv auto] "
                       + "2 ranks 3.64 images/s vs 1 rank 2.00 = **1.82×** (90.9% of 2×)")
    }

    // MARK: - The baselines' JSON

    /// Checks a baseline report as common.py's example writes it: TensorFlow,
    /// forward-backward, batch 16, 2 threads, steps 0.5, 0.7, 0.6 s, 3 GiB.
    func checkBaselineReport(_ r: RunReport) {
        XCTAssertEqual(r.tool, "tensorflow")
        XCTAssertEqual(r.mode, .forwardBackward)
        XCTAssertEqual(r.model, .vgg16)
        XCTAssertEqual(r.ranks, 1)
        XCTAssertEqual(r.batchPerRank, 16)
        XCTAssertEqual(r.globalBatch, 16)
        XCTAssertEqual(r.blasThreads, 2)
        XCTAssertNil(r.openblasCoretype)
        XCTAssertEqual(r.stepSeconds.count, 3)
        XCTAssertEqual(r.stepSeconds.mean, 0.6, accuracy: 1e-12)
        XCTAssertEqual(r.stepSeconds.median, 0.6, accuracy: 1e-12)
        XCTAssertEqual(r.stepSeconds.p95, 0.69, accuracy: 1e-12)
        XCTAssertEqual(r.stepSeconds, Summary([0.5, 0.7, 0.6]), "the writer's summary is vgg-dp's Summary")
        XCTAssertEqual(r.imagesPerSecond, 16 / 0.6, accuracy: 1e-9)
        XCTAssertEqual(r.peakRssBytes, 3 << 30)
        XCTAssertEqual(r.perRank.count, 1)
        XCTAssertEqual(r.perRank[0].steps.map(\.wall), [0.5, 0.7, 0.6])
        // That these are vgg-dp's own counts for VGG-16 at 224 needs the
        // engine: TrainerTests' ReportingTests.testBaselineCountsAreVGGDPsOwn.
        XCTAssertEqual(r.gflopsPerSecond, 16 / 0.6 * Double(r.stepFlopsPerImage) / 1e9, accuracy: 1e-6)
    }

    func testHandWrittenBaselineJSONDecodesAsRunReport() throws {
        let folder = Launcher.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("tf.json").path
        try Data(ReportFixture.baselineJSON.utf8).write(to: URL(fileURLWithPath: path))
        checkBaselineReport(try RunReport.read(from: path))
    }

    /// The real writer (scripts/baselines/common.py, standard library only)
    /// with made-up timings: what it writes must decode as a RunReport.
    func testPythonWriterOutputDecodesAsRunReport() throws {
        guard let python = ["/usr/bin/python3", "/usr/local/bin/python3"].first(where: FileManager.default.isExecutableFile)
                ?? ProcessInfo.processInfo.environment["PATH"]?.split(separator: ":").map({ "\($0)/python3" })
                    .first(where: FileManager.default.isExecutableFile) else {
            throw XCTSkip("python3 not found")
        }
        let folder = Launcher.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("example.json").path
        let script = Launcher.repoRoot.appendingPathComponent("scripts/baselines/common.py").path
        // common.py takes its counts from `vgg-dp describe --json` of the binary built with the tests.
        let r = try Launcher.command([python, script, "--example-report", path], timeout: 60,
                                     environment: ["VGGDP_BIN": Launcher.binary])
        XCTAssertEqual(r.status, 0, r.all)
        let written = try RunReport.read(from: path)
        checkBaselineReport(written)
        // Nothing left behind but the report (the temporary file was renamed).
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path), ["example.json"])
        // And it takes its place in a comparison next to vgg-dp.
        let vgg = report(batch: 16, threads: 2, step: 0.8, rssMiB: 2_048)
        let c = try Comparison(runs: [LoadedRun(path: path, report: written), run(vgg, "vggdp.json")])
        XCTAssertEqual(c.rows.map(\.tool), ["vgg-dp", "tensorflow"])
        XCTAssertEqual(try XCTUnwrap(c.rows[0].vsTensorFlow).imagesPerSecond, 0.6 / 0.8, accuracy: 1e-12)
        XCTAssertEqual(try XCTUnwrap(c.rows[0].vsTensorFlow).peakRss, 2.0 / 3.0, accuracy: 1e-12)
    }
}
