import Foundation
import Reports
import TestSupport
import Trainer
import VGGEngine
import Vocabulary
import XCTest

/// `vgg-dp memory`: the plan it prints is `MemoryPlan`'s for the options
/// given, `--fit` answers `MemoryPlan.largestBatch`, bad input exits 2; and
/// a run's report carries the plan of its configuration.
final class MemoryCommandTests: XCTestCase {
    func decoder() -> JSONDecoder {
        let d = JSONDecoder()
        d.keyDecodingStrategy = .convertFromSnakeCase
        return d
    }

    func testJSONIsThePlanOfTheOptions() throws {
        let r = try Launcher.run(["memory", "--json", "--model", "vgg19", "--image-size", "96", "--batch-size", "5",
                                  "--mode", "forward-backward", "--conv", "winograd4x4"], timeout: 60)
        XCTAssertEqual(r.status, 0, r.all)
        let printed = try decoder().decode(MemoryReport.self, from: Data(r.stdout.utf8))
        var config = TrainConfig()
        config.network = NetworkSpec(model: .vgg19, imageSize: 96)
        config.batchPerRank = 5
        config.mode = .forwardBackward
        config.convAlgorithm = .winograd4
        XCTAssertEqual(printed, MemoryPlan(config: config).report)
        XCTAssertEqual(printed.purpose, "training")
        XCTAssertEqual(printed.total.optimizerState, 0, "forward-backward has no optimizer")
        XCTAssertEqual(printed.layers.map(\.name), config.network.layers.map(\.name))

        let text = try Launcher.run(["memory", "--batch-size", "2", "--mode", "forward"], timeout: 60)
        XCTAssertEqual(text.status, 0, text.all)
        XCTAssertTrue(text.stdout.contains("memory per rank (plan, inference)"), text.stdout)
        XCTAssertTrue(text.stdout.contains("\nconv1_2 "), text.stdout)
    }

    func testFitPrintsTheLargestBatchThatFits() throws {
        let spec = NetworkSpec(model: .vgg16, imageSize: 224)
        let need16 = MemoryPlan(spec: spec, batch: 16, purpose: .training, optimizerState: true, convAlgorithm: .auto).total.sum
        for (size, expected) in [(String(need16), 16), (String(need16 - 1), 15)] {
            let r = try Launcher.run(["memory", "--mode", "train", "--fit", size, "--json"], timeout: 60)
            XCTAssertEqual(r.status, 0, r.all)
            struct Answer: Decodable { var fitBytes: Int; var batchPerRank: Int; var memory: MemoryReport }
            let a = try decoder().decode(Answer.self, from: Data(r.stdout.utf8))
            XCTAssertEqual(a.batchPerRank, expected, size)
            XCTAssertEqual(a.memory.batchPerRank, expected)
            XCTAssertLessThanOrEqual(a.memory.total.total, a.fitBytes)
        }
        let gib = try Launcher.run(["memory", "--mode", "forward", "--fit", "4GiB"], timeout: 60)
        XCTAssertEqual(gib.status, 0, gib.all)
        let expected = MemoryPlan.largestBatch(fitting: 4 << 30, spec: spec, purpose: .inference, optimizerState: false,
                                               convAlgorithm: .auto)!
        XCTAssertTrue(gib.stdout.contains("(4294967296 bytes): \(expected)\n"), gib.stdout)
    }

    func testBadInputExitsTwoWithOneMessage() throws {
        for (args, message) in [(["--fit", "lots"], "'lots' is not a size"),
                                (["--fit", "1MiB"], "not even batch 1 fits in 1MiB"),
                                (["--batch-size", "0"], "--batch-size must be at least 1"),
                                (["--image-size", "100"], "--image-size must be a positive multiple of 32")] {
            let r = try Launcher.run(["memory"] + args, timeout: 60)
            XCTAssertEqual(r.status, 2, "\(args): \(r.all)")
            XCTAssertTrue(r.stderr.contains(message), "\(args): \(r.stderr)")
            XCTAssertTrue(r.stdout.isEmpty, "\(args): \(r.stdout)")
        }
    }

    /// A short run's report holds the plan of its configuration and prints its line.
    func testRunReportCarriesThePlan() throws {
        let folder = Launcher.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("r.json").path
        let r = try Launcher.run(["--model", "vgg11", "--image-size", "32", "--width-divisor", "16", "--classes", "10",
                                  "--batch-size", "3", "--steps", "1", "--warmup", "0", "--threads", "1",
                                  "--mode", "train", "--conv", "im2col", "--report", path], timeout: 120)
        XCTAssertEqual(r.status, 0, r.all)
        let report = try RunReport.read(from: path)
        var config = TrainConfig()
        config.network = NetworkSpec(model: .vgg11, imageSize: 32, classes: 10, widthDivisor: 16)
        config.batchPerRank = 3
        config.convAlgorithm = .im2col
        XCTAssertEqual(report.memory, MemoryPlan(config: config).report)
        XCTAssertGreaterThan(report.memory?.total.optimizerState ?? 0, 0)
        XCTAssertTrue(r.stdout.contains("memory per rank (plan, training)"), r.stdout)
    }
}
