import Foundation
import Reports
import TestSupport
@testable import Trainer
import Vocabulary
import XCTest

/// Data parallelism tested for real: the tests launch vgg-dp under mpirun
/// with 2 and 3 ranks on a tiny network and read what it prints and writes.
final class DataParallelTests: XCTestCase {
    let tiny = Launcher.tiny

    /// Parses "‖Δw‖/‖w‖ = 1.234e-09" from verify's output.
    func relativeDifference(_ text: String) -> Double? {
        guard let range = text.range(of: "‖Δw‖/‖w‖ = ") else { return nil }
        return Double(text[range.upperBound...].prefix { !$0.isWhitespace })
    }

    func testEquivalenceAndReplicasOnTwoAndThreeRanks() throws {
        for ranks in [2, 3] {
            let r = try Launcher.run(["verify"] + tiny + ["--batch-size", "2", "--warmup", "0", "--steps", "4"], ranks: ranks)
            XCTAssertEqual(r.status, 0, r.all)
            XCTAssertTrue(r.stdout.contains("PASS"), r.all)
            XCTAssertTrue(r.stdout.contains("replicas: identical"), r.all)
            XCTAssertTrue(r.stdout.contains("\(ranks) ranks × 2 vs 1 rank × \(2 * ranks)"), r.all)
            // Stated tolerance: relative L2 difference of all weights ≤ 1e-5
            // (float32 sums over the batch in a different order).
            let rel = try XCTUnwrap(relativeDifference(r.stdout), r.all)
            print("equivalence \(ranks) ranks: ‖Δw‖/‖w‖ = \(rel)")
            XCTAssertLessThanOrEqual(rel, 1e-5)
            XCTAssertEqual(r.stdout.components(separatedBy: "PASS").count - 1, 1, "printed once, by rank 0")
        }
    }

    func testEquivalenceHoldsWithoutOverlapAndWithPerLayerBuckets() throws {
        for extra in [["--exchange", "allreduce", "--no-overlap"], ["--overlap", "--bucket-mb", "0"], ["--overlap", "--bucket-mb", "0.05"]] {
            let r = try Launcher.run(["verify"] + tiny + ["--batch-size", "2", "--warmup", "0", "--steps", "3"] + extra, ranks: 2)
            XCTAssertEqual(r.status, 0, "\(extra): \(r.all)")
            XCTAssertTrue(r.stdout.contains("PASS"), r.all)
        }
    }

    func testReportHasTheSameChecksumForOverlappedAndSequentialAllreduce() throws {
        let folder = Launcher.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        var checksums: [String] = []
        for (i, extra) in [["--overlap"], ["--exchange", "allreduce", "--no-overlap"], ["--overlap"]].enumerated() {
            let path = folder.appendingPathComponent("run\(i).json").path
            let r = try Launcher.run(tiny + ["--batch-size", "2", "--warmup", "1", "--steps", "4", "--bucket-mb", "0.1",
                                             "--report", path] + extra, ranks: 2)
            XCTAssertEqual(r.status, 0, r.all)
            let report = try RunReport.read(from: path)
            XCTAssertEqual(report.ranks, 2)
            XCTAssertEqual(report.globalBatch, 4)
            XCTAssertEqual(report.batchPerRank, 2)
            XCTAssertEqual(report.perRank.count, 2)
            XCTAssertEqual(report.perRank.map { $0.steps.count }, [4, 4])
            XCTAssertEqual(report.parameters, 113_090)
            XCTAssertGreaterThan(report.buckets.count, 1)
            XCTAssertEqual(report.buckets.map(\.bucket.count).reduce(0, +), 113_090)
            XCTAssertEqual(report.parameterChecksum.count, 16)
            XCTAssertEqual(report.overlap, extra == ["--overlap"])
            checksums.append(report.parameterChecksum)
        }
        // Two ranks: a + b is the same sum whichever thread issues it, and a
        // repeated run is bitwise identical.
        XCTAssertEqual(Set(checksums).count, 1, "\(checksums)")
    }

    /// Without --overlap / --no-overlap: overlap across hosts or with a
    /// core left free of compute, not on one host whose cores all compute.
    func testOverlapDefault() throws {
        func overlaps(_ hosts: Int, _ ranks: Int, _ threads: Int, _ cores: Int) -> Bool {
            RankLayout(hosts: hosts, ranksPerHost: ranks, threadsPerRank: threads, cores: cores).overlapsAllreduce
        }
        XCTAssertFalse(overlaps(1, 2, 1, 2))
        XCTAssertFalse(overlaps(1, 4, 1, 2))
        XCTAssertFalse(overlaps(1, 2, 4, 8))
        XCTAssertTrue(overlaps(1, 2, 1, 4))
        XCTAssertTrue(overlaps(2, 1, 2, 2))

        // And the binary applies it: 2 ranks × 1 thread here.
        let folder = Launcher.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("auto.json").path
        let r = try Launcher.run(tiny + ["--batch-size", "2", "--warmup", "0", "--steps", "1", "--threads", "1",
                                         "--report", path], ranks: 2)
        XCTAssertEqual(r.status, 0, r.all)
        let expected = 2 < ProcessInfo.processInfo.activeProcessorCount
        XCTAssertEqual(try RunReport.read(from: path).overlap, expected)
        XCTAssertTrue(r.stdout.contains(expected ? "overlapped with backward" : "after backward"), r.stdout)
    }

    /// --comm-wait auto (the default): host-shared's cross-host allreduce
    /// polls where its wait has no core to spare (overlapped: ranks ×
    /// (threads + 1) over the cores; after backward: as many ranks as
    /// cores); every other wait blocks; an explicit choice stands.
    func testCommWaitAutoPollsOnlyHostSharedsCrossHostWaitWithoutACore() throws {
        func wait(_ choice: CommWait, _ exchange: ExchangeChoice = .hostShared, hosts: Int = 2, ranks: Int = 2,
                  cores: Int = 2, overlapped: Bool = true) -> CommWait {
            RankLayout(hosts: hosts, ranksPerHost: ranks, threadsPerRank: 1, cores: cores)
                .communicationWait(choice, exchange: exchange, overlapped: overlapped)
        }
        XCTAssertEqual(wait(.auto), .polling)
        XCTAssertEqual(wait(.auto, cores: 3), .polling)
        XCTAssertEqual(wait(.auto, cores: 4), .blocking)
        XCTAssertEqual(wait(.auto, overlapped: false), .polling)
        XCTAssertEqual(wait(.auto, cores: 3, overlapped: false), .blocking)
        XCTAssertEqual(wait(.auto, hosts: 1, overlapped: false), .blocking)
        XCTAssertEqual(wait(.auto, .allreduce, overlapped: false), .blocking)
        XCTAssertEqual(wait(.auto, .allreduce), .blocking)
        XCTAssertEqual(wait(.auto, .allreduce, hosts: 1), .blocking)
        XCTAssertEqual(wait(.blocking), .blocking)
        XCTAssertEqual(wait(.polling, .allreduce, hosts: 1, ranks: 1, cores: 8, overlapped: false), .polling)

        // And the binary applies it: an overlapped allreduce on 2 ranks here blocks unless told to poll.
        let folder = Launcher.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        for (flags, expected) in [([], "blocking MPI_Allreduce"), (["--comm-wait", "polling"], "MPI_Iallreduce tested every 200 µs")] {
            let path = folder.appendingPathComponent("wait.json").path
            let r = try Launcher.run(tiny + ["--batch-size", "1", "--warmup", "0", "--steps", "1", "--threads", "1",
                                             "--exchange", "allreduce", "--overlap", "--report", path] + flags, ranks: 2)
            XCTAssertEqual(r.status, 0, r.all)
            XCTAssertEqual(try RunReport.read(from: path).commWait, expected, "\(flags)")
        }
    }

    func testStrongScalingSplitsTheGlobalBatch() throws {
        let folder = Launcher.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("strong.json").path
        let r = try Launcher.run(tiny + ["--global-batch", "6", "--warmup", "0", "--steps", "2", "--report", path], ranks: 3)
        XCTAssertEqual(r.status, 0, r.all)
        let report = try RunReport.read(from: path)
        XCTAssertEqual(report.batchPerRank, 2)
        XCTAssertEqual(report.globalBatch, 6)
    }

    func testGlobalBatchNotDivisibleStopsEveryRankWithOneMessage() throws {
        let r = try Launcher.run(tiny + ["--global-batch", "4", "--steps", "1"], ranks: 3)
        XCTAssertEqual(r.status, 2, r.all)
        XCTAssertEqual(r.stderr.components(separatedBy: "not divisible by the 3 ranks").count - 1, 1, r.all)
    }

    func testReplicaCheckEveryStepPasses() throws {
        let r = try Launcher.run(tiny + ["--batch-size", "1", "--warmup", "0", "--steps", "3", "--check-every", "1"], ranks: 2)
        XCTAssertEqual(r.status, 0, r.all)
        XCTAssertTrue(r.stdout.contains("identical on all 2 rank(s)"), r.all)
    }

    func testSingleProcessRunsWithoutMpirun() throws {
        let r = try Launcher.run(tiny + ["--batch-size", "2", "--warmup", "1", "--steps", "10", "--mode", "forward-backward"])
        XCTAssertEqual(r.status, 0, r.all)
        XCTAssertTrue(r.stdout.contains("step 0, duration = "), r.all)
        XCTAssertTrue(r.stdout.contains("Forward-backward across 10 steps, "), r.all)
        XCTAssertTrue(r.stdout.contains("ranks: 1 on 1 host(s)"), r.all)
    }
}

/// Gradients exchanged in 16 bits must still train the small learnable task.
final class SixteenBitGradientTests: XCTestCase {
    func testBF16AndFP16GradientsStillLearn() throws {
        let folder = Launcher.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        var checksums: [String: String] = [:]
        for dtype in ["fp32", "bf16", "fp16"] {
            let path = folder.appendingPathComponent("\(dtype).json").path
            let r = try Launcher.run(Launcher.tiny + ["--batch-size", "4", "--warmup", "0", "--steps", "150", "--dataset-size", "16",
                                                      "--init-scheme", "he", "--lr", "0.01", "--no-peak-probe",
                                                      "--allreduce-dtype", dtype, "--exchange", "allreduce", "--report", path], ranks: 2)
            XCTAssertEqual(r.status, 0, r.all)
            XCTAssertTrue(r.stdout.contains("gradients sent as \(dtype)"), r.all)
            XCTAssertTrue(r.stdout.contains("identical on all 2 rank(s)"), r.all)
            let report = try RunReport.read(from: path)
            checksums[dtype] = report.parameterChecksum
            let loss = report.lossPerStep
            let first = loss.prefix(15).reduce(0, +) / 15, end = loss.suffix(15).reduce(0, +) / 15
            print("\(dtype): cross-entropy \(first) over the first 15 steps, \(end) over the last 15")
            // Learns: the loss falls to well under the class prior's (~2.3).
            XCTAssertLessThan(end, 0.6 * first, dtype)
        }
        // 16-bit values travelled: each type's rounding leads to other weights than fp32's.
        XCTAssertEqual(Set(checksums.values).count, 3, "\(checksums)")
    }
}
