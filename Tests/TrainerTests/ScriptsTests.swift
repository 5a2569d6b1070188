import Foundation
import TestSupport
@testable import Trainer
import VGGEngine
import Reports
import XCTest

/// The scripts' shared library (scripts/lib/common.sh) and the vgg-dp
/// subcommands the scripts read through: `describe` (counts, link rates) and
/// `summary` (report figures). Nothing here needs mpirun or a benchmark.
final class ScriptsTests: XCTestCase {
    func script(_ name: String) -> String { Launcher.repoRoot.appendingPathComponent("scripts/\(name)").path }

    // MARK: - scripts/lib/common.sh

    /// Bad options end with one message naming the script and exit 2, before any work.
    func testBadOptionsExitTwoWithOneMessage() throws {
        let cases: [(String, [String], String)] = [
            ("scaling.sh", ["--bogus"], "scaling.sh: unknown option '--bogus' (vgg-dp options go after --; see --help)\n"),
            ("scaling.sh", ["--kind"], "scaling.sh: --kind needs a value\n"),
            ("scaling.sh", ["--kind=weak", "--batch-size=0"], "scaling.sh: --batch-size must be a positive integer, got '0'\n"),
            ("batch_sweep.sh", ["--sizes", "1 0"], "batch_sweep.sh: --sizes: '0' is not a positive integer\n"),
            ("compare.sh", ["--bogus"], "compare.sh: unknown option '--bogus' (see --help)\n"),
            ("compare.sh", ["--steps=x"], "compare.sh: --steps needs a whole number, got 'x'\n"),
            ("bench.sh", ["--bogus"], "bench.sh: unknown option '--bogus' (see --help)\n"),
            ("setup.sh", ["--bogus"], "setup.sh: unknown option '--bogus' (see --help)\n"),
        ]
        for (name, arguments, message) in cases {
            let r = try Launcher.command(["bash", script(name)] + arguments, timeout: 30,
                                         environment: ["VGGDP_BIN": Launcher.binary, "VGGDP_LOCK": ""])
            XCTAssertEqual(r.status, 2, "\(name) \(arguments): \(r.all)")
            XCTAssertEqual(r.stderr, message, "\(name) \(arguments)")
            XCTAssertEqual(r.stdout, "", "\(name) \(arguments)")
        }
    }

    /// launch.sh keeps its exit status 1 for its own usage errors.
    func testLaunchUsageErrorsExitOne() throws {
        for (arguments, message) in [(["-n"], "launch.sh: -n needs a value\n"),
                                     (["-n=0"], "launch.sh: RANKS must be a positive integer, got '0'\n"),
                                     (["--max-restarts"], "launch.sh: --max-restarts needs a value\n"),
                                     (["--max-restarts=-1"], "launch.sh: --max-restarts must be a whole number (0: no restart), got '-1'\n")] {
            let r = try Launcher.command(["bash", script("launch.sh")] + arguments, timeout: 30)
            XCTAssertEqual(r.status, 1, r.all)
            XCTAssertEqual(r.stderr, message)
        }
    }

    /// A binary that is not there: today's two lines, exit 1.
    func testMissingBinaryIsNamed() throws {
        let r = try Launcher.command(["bash", script("scaling.sh"), "--kind", "weak", "--batch-size", "2"], timeout: 30,
                                     environment: ["VGGDP_BIN": "/nonexistent/vgg-dp", "VGGDP_LOCK": ""])
        XCTAssertEqual(r.status, 1, r.all)
        XCTAssertEqual(r.stderr, """
            scaling.sh: VGGDP_BIN=/nonexistent/vgg-dp is not an executable file
            vgg-dp is not built: run scripts/setup.sh (or swift build -c release)

            """)
    }

    // MARK: - vgg-dp describe

    struct Description: Decodable {
        struct Layer: Decodable {
            var name: String
            var parameters: Int
            var forwardFlopsPerImage: Int
            var backwardFlopsPerImage: Int
        }
        var parameters: Int
        var forwardFlopsPerImage: Int
        var forwardBackwardFlopsPerImage: Int
        var gradientBytes: [String: Int]
        var layers: [Layer]
    }

    func testDescribeJSONHasNetworkSpecsCounts() throws {
        for spec in [NetworkSpec(model: .vgg16, imageSize: 224, classes: 1000),
                     NetworkSpec(model: .vgg11, imageSize: 32, classes: 10, widthDivisor: 16)] {
            let r = try Launcher.run(["describe", "--json", "--model", spec.model.rawValue, "--image-size", String(spec.imageSize),
                                      "--classes", String(spec.classes), "--width-divisor", String(spec.widthDivisor)], timeout: 60)
            XCTAssertEqual(r.status, 0, r.all)
            let decoder = JSONDecoder()
            decoder.keyDecodingStrategy = .convertFromSnakeCase
            let d = try decoder.decode(Description.self, from: Data(r.stdout.utf8))
            XCTAssertEqual(d.parameters, spec.parameterCount)
            XCTAssertEqual(d.forwardFlopsPerImage, spec.forwardFLOPsPerImage)
            XCTAssertEqual(d.forwardBackwardFlopsPerImage, spec.forwardBackwardFLOPsPerImage)
            XCTAssertEqual(d.gradientBytes, ["fp32": 4 * spec.parameterCount, "bf16": 2 * spec.parameterCount,
                                             "fp16": 2 * spec.parameterCount])
            XCTAssertEqual(d.layers.map(\.name), spec.layers.map(\.name))
            XCTAssertEqual(d.layers.map(\.parameters), spec.layers.map(\.parameterCount))
            XCTAssertEqual(d.layers.map(\.forwardFlopsPerImage).reduce(0, +), spec.forwardFLOPsPerImage)
            XCTAssertEqual(d.layers.map { $0.forwardFlopsPerImage + $0.backwardFlopsPerImage }.reduce(0, +),
                           spec.forwardBackwardFLOPsPerImage)
        }
        let bad = try Launcher.run(["describe", "--json", "--image-size", "100"], timeout: 60)
        XCTAssertEqual(bad.status, 2, bad.all)
        XCTAssertTrue(bad.stderr.contains("--image-size must be a positive multiple of 32"), bad.stderr)
    }

    /// cluster.sh reads rates through `vgg-dp describe --rate`: the same
    /// answers as Units.bitsPerSecond, refusals included.
    func testDescribeRateIsUnitsBitsPerSecond() throws {
        for text in ["1gbit", "10Gbit", "1.5gbit", "500mbit", "25gbit/s", "3kbit", "1tbit",
                     "1gbps", "fast", "0gbit", "1.2.3gbit", "gbit", ""] {
            let r = try Launcher.run(["describe", "--rate", text], timeout: 60)
            if let bits = try? Units.bitsPerSecond(text) {
                XCTAssertEqual(r.status, 0, "\(text): \(r.all)")
                XCTAssertEqual(r.stdout, "\(Int64(bits.rounded()))\n", text)
            } else {
                XCTAssertEqual(r.status, 2, "\(text): \(r.all)")
                XCTAssertEqual(r.stdout, "", text)
            }
        }
        // And cluster.sh refuses what Units refuses, before touching anything
        // (a byte rate, which tc would have taken).
        let r = try Launcher.command(["bash", script("cluster.sh"), "up", "2", "--rate", "1gbps"], timeout: 30,
                                     environment: ["VGGDP_BIN": Launcher.binary, "VGGDP_CLUSTER_ID": "253"])
        if r.status == 0 { _ = try? Launcher.command(["bash", script("cluster.sh"), "down"], environment: ["VGGDP_CLUSTER_ID": "253"]) }
        XCTAssertEqual(r.status, 2, r.all)
        XCTAssertTrue(r.stderr.hasPrefix("cluster.sh: --rate: '1gbps' is not a rate: write a number and bit"), r.stderr)
    }

    // MARK: - vgg-dp summary

    /// The figures bench.sh and compare.sh print come out of `summary` as
    /// the report holds them: exactly, means over ranks, left-out fields empty.
    func testSummaryPrintsReportFieldsExactly() throws {
        let folder = Launcher.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("run.json").path
        let train = try Launcher.run(Launcher.tiny + ["--steps", "2", "--warmup", "0", "--threads", "1", "--report", path], timeout: 120)
        XCTAssertEqual(train.status, 0, train.all)
        let report = try RunReport.read(from: path)

        let fields = "ranks,step_seconds.median,images_per_second,per_rank.forward,per_rank.host,conv,note,peak_rss_bytes"
        let r = try Launcher.run(["summary", path, "--field", fields, "--header"], timeout: 60)
        XCTAssertEqual(r.status, 0, r.all)
        let lines = r.stdout.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        XCTAssertEqual(lines.count, 3, r.stdout)  // header, one report, the final newline
        XCTAssertEqual(lines[0], fields.replacingOccurrences(of: ",", with: "\t"))
        let v = lines[1].split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
        XCTAssertEqual(v.count, 8, lines[1])
        XCTAssertEqual(Int(v[0]), report.ranks)
        XCTAssertEqual(Double(v[1]), report.stepSeconds.median)
        XCTAssertEqual(Double(v[2]), report.imagesPerSecond)
        XCTAssertEqual(Double(v[3]), report.perRank.map(\.forward).reduce(0, +) / Double(report.perRank.count))
        XCTAssertEqual(v[4], report.perRank.map(\.host).joined(separator: ","))
        XCTAssertEqual(v[5], report.conv?.rawValue ?? "")
        XCTAssertNil(report.note, "a complete run has no note")
        XCTAssertEqual(v[6], "")
        XCTAssertEqual(Int(v[7]), report.peakRssBytes)

        for (field, message) in [("nope", "a run report has no field 'nope'"),
                                 ("step_seconds", "step_seconds is an object"),
                                 ("step_seconds.nope", "has no field 'step_seconds.nope'")] {
            let bad = try Launcher.run(["summary", path, "--field", field], timeout: 60)
            XCTAssertEqual(bad.status, 2, bad.all)
            XCTAssertTrue(bad.stderr.contains(message), bad.stderr)
        }
        let notReport = try Launcher.run(["summary", folder.path], timeout: 60)
        XCTAssertEqual(notReport.status, 2, notReport.all)
    }
}
