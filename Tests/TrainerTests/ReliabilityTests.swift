import Foundation
import Reports
import TestSupport
@testable import Trainer
import XCTest

/// Failing fast instead of hanging: bad input, dying and stalling ranks,
/// signals, numerical faults, checkpoint and resume, and a soak run.
final class ReliabilityTests: XCTestCase {
    let tiny = Launcher.tiny + ["--no-peak-probe"]

    /// Lines vgg-dp itself wrote (mpirun adds its own notes around them).
    func ourLines(_ text: String) -> [Substring] {
        text.split(separator: "\n").filter { $0.hasPrefix("vgg-dp:") || $0.hasPrefix("Error:") || $0.hasPrefix("Usage:") }
    }

    /// Each bad input: one message, printed once, status 2 on every rank, no output file.
    func testBadInputTableWithOneAndTwoRanks() throws {
        let folder = Launcher.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let report = folder.appendingPathComponent("report.json").path
        let plainFile = folder.appendingPathComponent("plain-file").path
        try Data("x".utf8).write(to: URL(fileURLWithPath: plainFile))
        let cases: [(args: [String], message: String)] = [
            (["--model", "vgg12"], "The value 'vgg12' is invalid for '--model <model>'"),
            (["--mode", "backward"], "The value 'backward' is invalid for '--mode <mode>'"),
            (["--image-size", "100"], "--image-size must be a positive multiple of 32"),
            (["--image-size", "0"], "--image-size must be a positive multiple of 32"),
            (["--batch-size", "0"], "--batch-size must be at least 1, got 0"),
            (["--batch-size=-3"], "--batch-size must be at least 1, got -3"),
            (["--steps", "0"], "--steps must be at least 1, got 0"),
            (["--warmup=-1"], "--warmup must be 0 or more, got -1"),
            (["--threads", "0"], "--threads must be at least 1, got 0"),
            (["--classes", "0"], "--classes must be at least 1, got 0"),
            (["--bucket-mb=-1"], "--bucket-mb must be 0 or more"),
            (["--width-divisor", "3"], "--width-divisor 3 does not divide the channel count 64"),
            (["--global-batch", "0"], "--global-batch must be at least 1"),
            (["--batch-size", "2", "--global-batch", "4"], "not both"),
            (["--report", "/nonexistent-folder/r.json"], "--report /nonexistent-folder/r.json: folder /nonexistent-folder does not exist"),
            (["--csv", "/nonexistent-folder/r.csv"], "folder /nonexistent-folder does not exist"),
            (["--trace", "/nonexistent-folder/t.json"], "folder /nonexistent-folder does not exist"),
            (["--mode", "forward", "--skip-nonfinite"], "--skip-nonfinite needs a mode with backward"),
            (["--checkpoint-dir", folder.path], "--checkpoint-dir and --checkpoint-every go together"),
            (["--checkpoint-dir", plainFile, "--checkpoint-every", "2"], "--checkpoint-dir \(plainFile) is a file, not a folder"),
            (["--trace", report], "contradictory options: --report and --trace both write \(report)"),
            (["--momentum", "nan"], "--momentum must be a finite number in [0, 1), got nan"),
            (["--momentum", "2"], "--momentum must be a finite number in [0, 1), got 2.0"),
            (["--momentum=-0.5"], "--momentum must be a finite number in [0, 1), got -0.5"),
            (["--weight-decay", "inf"], "--weight-decay must be a finite number ≥ 0, got inf"),
            (["--weight-decay=-1"], "--weight-decay must be a finite number ≥ 0, got -1.0"),
            (["--inject-fault", "kill:2:1"], "--inject-fault kill:2:1: rank 2 does not exist"),
            (["--inject-fault", "stall:0:12"], "--inject-fault stall:0:12: step 12 never comes; this run's steps are 0 to 11"),
            (["--resume", "/nonexistent-folder"], "--resume /nonexistent-folder: no such folder"),
            (["--resume", folder.path], "no checkpoint.vggdp there"),
            (["--timeout=-5"], "--timeout must be 0 (off) or more"),
            (["--steps", "many"], "The value 'many' is invalid for '--steps <steps>'"),
            (["--no-such-option"], "Unknown option '--no-such-option'"),
        ]
        for ranks in [1, 2] {
            for c in cases {
                let r = try Launcher.run(tiny + ["--steps", "2", "--report", report] + c.args, ranks: ranks, timeout: 60)
                XCTAssertEqual(r.status, 2, "\(c.args) on \(ranks) rank(s): \(r.all)")
                XCTAssertTrue(r.stderr.contains(c.message), "\(c.args) on \(ranks) rank(s): \(r.all)")
                XCTAssertEqual(ourLines(r.stderr).filter { $0.hasPrefix("vgg-dp:") || $0.hasPrefix("Error:") }.count, 1,
                               "one message, from rank 0 only: \(c.args): \(r.stderr)")
                XCTAssertFalse(r.all.contains("Fatal error") || r.all.contains("Stack dump"), "no crash trace: \(r.all)")
                XCTAssertFalse(FileManager.default.fileExists(atPath: report), "no report for \(c.args)")
            }
        }
        // Divisibility depends on the rank count.
        let r = try Launcher.run(tiny + ["--global-batch", "3", "--steps", "1"], ranks: 2)
        XCTAssertEqual(r.status, 2)
        XCTAssertTrue(r.stderr.contains("--global-batch 3 is not divisible by the 2 ranks"), r.all)
    }

    func testKilledRankEndsTheJobAndLeavesNoProcess() throws {
        let marker = "987654321" // a seed no other test uses, to find leftover processes
        let r = try Launcher.run(tiny + ["--batch-size", "1", "--warmup", "0", "--steps", "1000", "--seed", marker,
                                         "--inject-fault", "kill:1:3"], ranks: 3, timeout: 60)
        XCTAssertNotEqual(r.status, 0)
        XCTAssertNotEqual(r.status, 124, "the job hung until the test's time limit")
        XCTAssertTrue(r.all.contains("rank 1 kills itself at step 3"), r.all)
        XCTAssertTrue(r.all.contains("exited on signal 9"), "mpirun names the dead rank: \(r.all)")
        usleep(500_000)
        let pgrep = Process()
        pgrep.executableURL = URL(fileURLWithPath: "/usr/bin/pgrep")
        pgrep.arguments = ["-f", "seed \(marker)"]
        pgrep.standardOutput = FileHandle.nullDevice
        try pgrep.run()
        pgrep.waitUntilExit()
        XCTAssertEqual(pgrep.terminationStatus, 1, "pgrep found processes left behind")
    }

    func testStalledRankIsNamedByTheWatchdog() throws {
        let r = try Launcher.run(tiny + ["--batch-size", "1", "--warmup", "0", "--steps", "20", "--timeout", "2",
                                         "--inject-fault", "stall:2:4"], ranks: 3, timeout: 60)
        XCTAssertNotEqual(r.status, 0)
        XCTAssertNotEqual(r.status, 124, "the job hung until the test's time limit")
        XCTAssertTrue(r.stderr.contains("watchdog: no progress for 2 s at step 4"), r.all)
        XCTAssertTrue(r.stderr.contains("rank(s) 2 have not arrived (2 of 3 ranks are waiting in it)"), r.all)
    }

    func testSIGTERMWritesAReportMarkedIncomplete() throws {
        let folder = Launcher.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let report = folder.appendingPathComponent("r.json").path
        let out = folder.appendingPathComponent("out")
        _ = FileManager.default.createFile(atPath: out.path, contents: nil)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/bash")
        p.arguments = [Launcher.repoRoot.appendingPathComponent("scripts/launch.sh").path, "-n", "2", "--"]
            + tiny + ["--batch-size", "1", "--warmup", "0", "--steps", "100000", "--report", report]
        var env = ProcessInfo.processInfo.environment
        env["VGGDP_BIN"] = Launcher.binary
        p.environment = env
        p.standardOutput = try FileHandle(forWritingTo: out)
        p.standardError = FileHandle.nullDevice
        try p.run()
        // Wait for timed steps to be recorded (progress line "step 10"), at most 60 s.
        for _ in 0..<600 {
            if let text = try? String(contentsOf: out, encoding: .utf8), text.contains(": step 10, duration") { break }
            usleep(100_000)
        }
        kill(p.processIdentifier, SIGTERM) // launch.sh execs mpirun: this is mpirun
        p.waitUntilExit()
        XCTAssertNotEqual(p.terminationStatus, 0)
        let r = try RunReport.read(from: report)
        XCTAssertFalse(r.complete)
        XCTAssertGreaterThanOrEqual(r.perRank[0].steps.count, 11)
        XCTAssertTrue(r.note?.contains("stopped by signal 15") ?? false, r.note ?? "no note")
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.contains(".tmp-") }
        XCTAssertEqual(leftovers, [], "no temporary file left half-written")
    }

    func testNonFiniteGradientStopsOrIsSkippedConsistently() throws {
        let stop = try Launcher.run(tiny + ["--batch-size", "1", "--warmup", "0", "--steps", "6", "--inject-fault", "nan:1:3"], ranks: 2)
        XCTAssertEqual(stop.status, 1, stop.all)
        XCTAssertTrue(stop.stderr.contains("non-finite gradient (NaN or Inf) at step 3 in layer fc8"), stop.all)
        XCTAssertEqual(ourLines(stop.stderr).count, 1, stop.stderr)

        let folder = Launcher.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("r.json").path
        let skip = try Launcher.run(tiny + ["--batch-size", "1", "--warmup", "0", "--steps", "6", "--inject-fault", "nan:1:3",
                                            "--skip-nonfinite", "--report", path], ranks: 2)
        XCTAssertEqual(skip.status, 0, skip.all)
        XCTAssertTrue(skip.stdout.contains("identical on all 2 rank(s)"), skip.all)
        XCTAssertEqual(try RunReport.read(from: path).skippedSteps, 1)
    }

    func checksum(_ text: String) -> String? { Launcher.checksum(text) }

    func testResumeAfterAKilledRankReproducesTheUninterruptedRun() throws {
        let folder = Launcher.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let base = tiny + ["--batch-size", "2", "--warmup", "1", "--steps", "7"]
        let a = folder.appendingPathComponent("a"), b = folder.appendingPathComponent("b")
        try FileManager.default.createDirectory(at: a, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: b, withIntermediateDirectories: true)

        let whole = try Launcher.run(base + ["--checkpoint-dir", a.path, "--checkpoint-every", "2"], ranks: 2)
        XCTAssertEqual(whole.status, 0, whole.all)
        // Checkpoints after steps 1, 3, 5 (0-based); the kill comes at step 5, before its checkpoint.
        let killed = try Launcher.run(base + ["--checkpoint-dir", b.path, "--checkpoint-every", "2", "--inject-fault", "kill:1:5"], ranks: 2)
        XCTAssertNotEqual(killed.status, 0)
        let resumed = try Launcher.run(base + ["--checkpoint-dir", b.path, "--checkpoint-every", "2", "--resume", b.path], ranks: 2)
        XCTAssertEqual(resumed.status, 0, resumed.all)
        XCTAssertTrue(resumed.stdout.contains("resumed from \(b.path) at step 4"), resumed.all)
        let expected = try XCTUnwrap(checksum(whole.stdout))
        XCTAssertEqual(checksum(resumed.stdout), expected, "bitwise-identical weights after resume")

        // Another model, or a damaged file, is refused.
        let other = try Launcher.run(["--model", "vgg13", "--image-size", "32", "--width-divisor", "16", "--classes", "10",
                                      "--batch-size", "2", "--steps", "7", "--resume", b.path], ranks: 2)
        XCTAssertEqual(other.status, 2, other.all)
        XCTAssertTrue(other.stderr.contains("parameters, this model has") || other.stderr.contains("model vgg11 vs vgg13"), other.all)
        let otherClasses = try Launcher.run(Launcher.tiny.dropLast(2) + ["--classes", "10", "--batch-size", "2", "--steps", "7",
                                                                        "--seed", "5", "--resume", b.path], ranks: 2)
        XCTAssertEqual(otherClasses.status, 2, otherClasses.all)
        XCTAssertTrue(otherClasses.stderr.contains("seed 42 vs 5"), otherClasses.all)

        let file = b.appendingPathComponent("checkpoint.vggdp")
        var bytes = try Data(contentsOf: file)
        bytes[bytes.count / 2] ^= 0xFF
        try bytes.write(to: file)
        let corrupt = try Launcher.run(base + ["--resume", b.path], ranks: 2)
        XCTAssertEqual(corrupt.status, 2, corrupt.all)
        XCTAssertTrue(corrupt.stderr.contains("truncated or corrupted (checksum mismatch)"), corrupt.all)
        try bytes.prefix(1000).write(to: file)
        let truncated = try Launcher.run(base + ["--resume", b.path], ranks: 1)
        XCTAssertEqual(truncated.status, 2, truncated.all)
        XCTAssertTrue(truncated.stderr.contains("truncated or corrupted"), truncated.all)
    }

    /// 4 ranks, 1,000 steps of the tiny network: replicas identical, memory flat.
    func testSoakFourRanksThousandSteps() throws {
        let folder = Launcher.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("soak.json").path
        let r = try Launcher.run(tiny + ["--batch-size", "1", "--warmup", "0", "--steps", "1000", "--check-every", "250",
                                         "--report", path], ranks: 4, timeout: 600)
        XCTAssertEqual(r.status, 0, r.all)
        let report = try RunReport.read(from: path)
        XCTAssertEqual(report.perRank.map { $0.steps.count }, [1000, 1000, 1000, 1000])
        for rank in report.perRank {
            let at100 = try XCTUnwrap(rank.rssAtStep100Bytes), atEnd = try XCTUnwrap(rank.rssAtEndBytes)
            print("soak rank \(rank.rank): RSS \(at100 / 1024) KiB at step 100, \(atEnd / 1024) KiB at step 1000")
            // Flat: nothing allocated per step. 1 MiB of slack for the allocator's own bookkeeping.
            XCTAssertLessThanOrEqual(atEnd, at100 + (1 << 20))
        }
        XCTAssertTrue(r.stdout.contains("identical on all 4 rank(s)"), r.all)
    }
}
