import Foundation
@testable import Reports
import TestSupport
import Vocabulary
import XCTest

/// The faults of issue 15 found by trying to break the command line: each
/// ends with one clear message and the right status, before any work where
/// it is bad input, and leaves no half-written file.
final class CLIFaultTests: XCTestCase {
    let tiny = Launcher.tiny + ["--no-peak-probe"]
    var folder: URL!
    var mounts: [String] = []

    override func setUp() {
        folder = Launcher.temporaryFolder()
    }

    override func tearDown() {
        for m in mounts.reversed() { _ = try? Launcher.command(["umount", m], timeout: 30) }
        mounts = []
        try? FileManager.default.removeItem(at: folder)
    }

    func path(_ name: String) -> String { folder.appendingPathComponent(name).path }

    /// Mounts a tmpfs of `size` at `at` (created), or skips the test saying why.
    func mountTmpfs(at dir: String, options: String) throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let r = try Launcher.command(["mount", "-t", "tmpfs", "-o", options, "tmpfs", dir], timeout: 30)
        guard r.status == 0 else { throw XCTSkip("cannot mount a tmpfs here (mount -o \(options) exited \(r.status): \(r.all))") }
        mounts.append(dir)
    }

    /// Lines vgg-dp itself wrote on stderr (mpirun adds its own around them).
    func ourErrors(_ text: String) -> [Substring] {
        text.split(separator: "\n").filter { $0.hasPrefix("vgg-dp: error") || $0.hasPrefix("Error:") }
    }

    func leftovers(_ dir: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.contains(".tmp-") }
    }

    // MARK: - 1. A failed checkpoint write ends every rank

    func testFullFilesystemCheckpointEndsEveryRankWithOneMessage() throws {
        let dir = path("full")
        try mountTmpfs(at: dir, options: "size=64k")
        // The tiny model's checkpoint (parameters and momentum) is about 0.9 MB: it cannot fit.
        let r = try Launcher.run(tiny + ["--batch-size", "1", "--warmup", "0", "--steps", "20",
                                         "--checkpoint-dir", dir, "--checkpoint-every", "1"], ranks: 2, timeout: 90)
        XCTAssertNotEqual(r.status, 124, "the job hung until the test's time limit: \(r.all)")
        XCTAssertEqual(r.status, 1, r.all)
        XCTAssertFalse(r.all.contains("watchdog"), "no rank waited for the watchdog: \(r.all)")
        let errors = ourErrors(r.stderr)
        XCTAssertEqual(errors.count, 1, "one message: \(r.stderr)")
        XCTAssertTrue(errors.first?.contains("cannot write \(dir)/checkpoint.vggdp: No space left on device") ?? false, r.stderr)
        XCTAssertEqual(try leftovers(dir), [], "the failed write's temporary file is removed")
    }

    // MARK: - --checkpoint-dir is created; a file or an unwritable folder is refused

    func testCheckpointFolderIsCreatedWithItsParents() throws {
        for ranks in [1, 2] {
            let dir = path("ranks\(ranks)/a/b/checkpoints")
            let r = try Launcher.run(tiny + ["--global-batch", "2", "--warmup", "0", "--steps", "2",
                                             "--checkpoint-dir", dir, "--checkpoint-every", "2"], ranks: ranks)
            XCTAssertEqual(r.status, 0, r.all)
            XCTAssertTrue(r.stdout.contains("--checkpoint-dir: created \(dir)"), r.all)
            XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/checkpoint.vggdp"), r.all)
        }
    }

    func testCheckpointFolderThatIsAFileOrReadOnlyIsRefusedBeforeWork() throws {
        let file = path("plain-file")
        try Data("x".utf8).write(to: URL(fileURLWithPath: file))
        let report = path("r.json")
        for ranks in [1, 2] {
            let r = try Launcher.run(tiny + ["--steps", "2", "--report", report, "--checkpoint-dir", file, "--checkpoint-every", "1"],
                                     ranks: ranks, timeout: 60)
            XCTAssertEqual(r.status, 2, r.all)
            XCTAssertTrue(r.stderr.contains("--checkpoint-dir \(file) is a file, not a folder"), r.all)
            XCTAssertFalse(r.stdout.contains("vgg-dp: vgg11"), "refused before the layout line: \(r.all)")
        }
        let readOnly = path("ro")
        try mountTmpfs(at: readOnly, options: "ro,size=64k")
        let cases = [(readOnly, "--checkpoint-dir \(readOnly): folder is not writable (Read-only file system)"),
                     (readOnly + "/sub", "--checkpoint-dir \(readOnly)/sub: cannot create the folder")]
        for (dir, message) in cases {
            for ranks in [1, 2] {
                let r = try Launcher.run(tiny + ["--steps", "2", "--report", report, "--checkpoint-dir", dir, "--checkpoint-every", "1"],
                                         ranks: ranks, timeout: 60)
                XCTAssertEqual(r.status, 2, r.all)
                XCTAssertTrue(r.stderr.contains(message), r.all)
                XCTAssertEqual(ourErrors(r.stderr).count, 1, r.stderr)
                XCTAssertFalse(FileManager.default.fileExists(atPath: report))
            }
        }
    }

    // MARK: - 3. A CSV under another header is refused before any work

    func testCSVWithAnotherHeaderIsRefusedBeforeWork() throws {
        let csv = path("other.csv")
        let original = Data("name,value\nx,1\n".utf8)
        try original.write(to: URL(fileURLWithPath: csv))
        for ranks in [1, 2] {
            let r = try Launcher.run(tiny + ["--steps", "2", "--csv", csv, "--report", path("r.json")], ranks: ranks, timeout: 60)
            XCTAssertEqual(r.status, 2, r.all)
            XCTAssertTrue(r.stderr.contains("--csv \(csv) has another header (first line: name,value)"), r.all)
            XCTAssertFalse(r.stdout.contains("vgg-dp: vgg11"), "refused before any work: \(r.all)")
            XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: csv)), original, "the CSV is unchanged")
            XCTAssertFalse(FileManager.default.fileExists(atPath: path("r.json")))
        }
    }

    // MARK: - 4 and 8. A signal: the partial report keeps the job's ranks; no temporary file stays

    /// Starts a 2-rank job that trains "forever", waits for its 11th timed
    /// step, sends SIGTERM to mpirun and waits for the end.
    func stopTwoRankJob(_ extra: [String]) throws -> Int32 {
        let out = path("out")
        _ = FileManager.default.createFile(atPath: out, contents: nil)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/bash")
        p.arguments = [Launcher.repoRoot.appendingPathComponent("scripts/launch.sh").path, "-n", "2", "--"]
            + tiny + ["--batch-size", "1", "--warmup", "0", "--steps", "100000"] + extra
        var env = ProcessInfo.processInfo.environment
        env["VGGDP_BIN"] = Launcher.binary
        env["VGGDP_OPENBLAS_KERNEL"] = "keep"
        p.environment = env
        p.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: out))
        p.standardError = FileHandle.nullDevice
        try p.run()
        for _ in 0..<600 {
            if let text = try? String(contentsOfFile: out, encoding: .utf8), text.contains(": step 10, duration") { break }
            usleep(100_000)
        }
        kill(p.processIdentifier, SIGTERM)  // launch.sh execs mpirun: this is mpirun
        p.waitUntilExit()
        return p.terminationStatus
    }

    func testPartialReportOfTwoRanksKeepsTheJobAndToolsSeeItIncomplete() throws {
        let report = path("partial.json"), checkpoints = path("ck")
        let status = try stopTwoRankJob(["--report", report, "--checkpoint-dir", checkpoints, "--checkpoint-every", "1"])
        XCTAssertNotEqual(status, 0)
        let r = try RunReport.read(from: report)
        XCTAssertFalse(r.complete)
        XCTAssertEqual(r.ranks, 2, "the job's ranks, though only rank 0's timings are in it")
        XCTAssertEqual(r.globalBatch, 2)
        XCTAssertEqual(r.perRank.count, 1)
        XCTAssertEqual(r.imagesPerSecond, 2 / r.stepSeconds.mean, accuracy: 1e-9 * r.imagesPerSecond)
        // A SIGTERM while rank 0 checkpoints every step: no temporary file, and the last checkpoint whole.
        XCTAssertEqual(try leftovers(folder.path), [])
        XCTAssertEqual(try leftovers(checkpoints), [])
        // Read and verified (its hash checked) before its step is compared with this run's one step.
        let resumed = try Launcher.run(tiny + ["--global-batch", "2", "--warmup", "0", "--steps", "1", "--resume", checkpoints],
                                       ranks: 1, timeout: 60)
        XCTAssertEqual(resumed.status, 2, resumed.all)
        XCTAssertTrue(resumed.stderr.contains("past this run's 1 steps"), "the checkpoint reads back whole: \(resumed.all)")

        let model = try Launcher.run(["model", report, "--link", "25gbit", "--latency", "5us"])
        XCTAssertEqual(model.status, 2, model.all)
        XCTAssertTrue(model.stderr.contains("the profile is marked incomplete (stopped by signal 15"), model.all)

        let study = try Launcher.run(["report", report])
        XCTAssertEqual(study.status, 0, study.all)
        XCTAssertTrue(study.stderr.contains("partial.json is marked incomplete (stopped by signal 15"), study.all)
        XCTAssertTrue(study.stderr.contains("timed on 1 of its 2 rank(s)"), study.all)
        XCTAssertTrue(study.stdout.contains("| 2 (incomplete) |"), study.all)
    }

    func testOrphanedTemporaryFilesOfEndedRunsAreRemoved() throws {
        // A PID that was alive and is not any more.
        let gone = Process()
        gone.executableURL = URL(fileURLWithPath: "/bin/true")
        try gone.run()
        gone.waitUntilExit()
        let dead = gone.processIdentifier
        let checkpoints = path("ck")
        try FileManager.default.createDirectory(atPath: checkpoints, withIntermediateDirectories: true)
        let orphans = ["ck/.checkpoint.vggdp.tmp-\(dead)", ".r.json.tmp-\(dead)"]
        let live = ".r.json.tmp-\(getpid())"  // this test's own process: alive
        let unrelated = ".other.json.tmp-\(dead)"
        for name in orphans + [live, unrelated] { try Data("x".utf8).write(to: URL(fileURLWithPath: path(name))) }
        let r = try Launcher.run(tiny + ["--batch-size", "1", "--warmup", "0", "--steps", "1", "--report", path("r.json"),
                                         "--checkpoint-dir", checkpoints, "--checkpoint-every", "1"])
        XCTAssertEqual(r.status, 0, r.all)
        for name in orphans {
            XCTAssertFalse(FileManager.default.fileExists(atPath: path(name)), name)
            XCTAssertTrue(r.stdout.contains("removed \(canonical(path(name))): a temporary file left by a run that has ended"), r.all)
        }
        XCTAssertTrue(FileManager.default.fileExists(atPath: path(live)), "a live process's file stays")
        XCTAssertTrue(FileManager.default.fileExists(atPath: path(unrelated)), "another output's file stays")
    }

    func canonical(_ p: String) -> String {
        guard let real = realpath((p as NSString).deletingLastPathComponent, nil) else { return p }
        defer { free(real) }
        return String(cString: real) + "/" + (p as NSString).lastPathComponent
    }

    func testAtomicWriteRegistersItsTemporaryFileWhileWriting() throws {
        let target = path("data.bin")
        var during: [String] = []
        try writeAtomically(Data("abc".utf8), to: target) { fd, data in
            during = TemporaryFiles.current
            try writeAll(fd, data)
        }
        let tmp = folder.appendingPathComponent(".data.bin.tmp-\(getpid())").path
        XCTAssertTrue(during.contains(tmp), "\(during)")
        XCTAssertFalse(TemporaryFiles.current.contains(tmp), "forgotten once renamed")
        // A failed write: removed from disk and from the registry, the old file kept.
        XCTAssertThrowsError(try writeAtomically(Data("defg".utf8), to: target) { _, _ in
            throw WriteFailure(reason: "No space left on device")
        })
        XCTAssertFalse(TemporaryFiles.current.contains(tmp))
        XCTAssertFalse(FileManager.default.fileExists(atPath: tmp))
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: target)), Data("abc".utf8))
        // What a signal or an abort does before the process ends.
        let fd = TemporaryFiles.create(tmp)
        XCTAssertGreaterThanOrEqual(fd, 0)
        close(fd)
        TemporaryFiles.removeAll()
        XCTAssertFalse(FileManager.default.fileExists(atPath: tmp))
        XCTAssertEqual(TemporaryFiles.current, [])
    }

    // MARK: - 5. Resuming a finished checkpoint

    func testResumingACheckpointAlreadyAtStepsIsNothingToDo() throws {
        let checkpoints = path("ck"), report = path("r.json")
        let base = tiny + ["--global-batch", "2", "--warmup", "1", "--steps", "3"]
        let first = try Launcher.run(base + ["--checkpoint-dir", checkpoints, "--checkpoint-every", "4"], ranks: 2)
        XCTAssertEqual(first.status, 0, first.all)
        for ranks in [1, 2] {
            let r = try Launcher.run(base + ["--resume", checkpoints, "--report", report], ranks: ranks, timeout: 60)
            XCTAssertEqual(r.status, 2, r.all)
            XCTAssertTrue(r.stderr.contains("is at step 4: this run's 4 steps are already done; nothing to do"), r.all)
            XCTAssertEqual(ourErrors(r.stderr).count, 1, r.stderr)
            XCTAssertFalse(r.stdout.contains("Train across"), r.all)
            XCTAssertFalse(FileManager.default.fileExists(atPath: report), "no report that looks complete")
        }
    }

    // MARK: - 6. Two outputs on one path

    func testOutputsOnOnePathAreContradictory() throws {
        let sub = path("sub")
        try FileManager.default.createDirectory(atPath: sub, withIntermediateDirectories: true)
        let link = path("link")
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: sub)
        let cases: [([String], String)] = [
            (["--report", path("x.json"), "--trace", path("x.json")], "--report and --trace both write \(path("x.json"))"),
            (["--report", sub + "/x", "--csv", link + "/x"], "--report and --csv both write \(sub)/x and \(link)/x"),
            (["--trace", sub + "/../sub/t", "--csv", sub + "/t"], "--trace and --csv both write"),
            (["--report", sub + "/checkpoint.vggdp", "--checkpoint-dir", link, "--checkpoint-every", "1"],
             "--report and --checkpoint-dir both write"),
        ]
        for ranks in [1, 2] {
            for (args, message) in cases {
                let r = try Launcher.run(tiny + ["--steps", "2"] + args, ranks: ranks, timeout: 60)
                XCTAssertEqual(r.status, 2, "\(args): \(r.all)")
                XCTAssertTrue(r.stderr.contains("contradictory options: " + message), "\(args): \(r.all)")
                XCTAssertEqual(ourErrors(r.stderr).count, 1, r.stderr)
                XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: sub), [], "nothing written for \(args)")
            }
        }
        for command in ["report", "model"] {
            let r = try Launcher.run([command, path("any.json"), "--markdown", sub + "/m", "--csv", link + "/m"])
            XCTAssertEqual(r.status, 2, r.all)
            XCTAssertTrue(r.stderr.contains("contradictory options: --markdown and --csv both write \(sub)/m and \(link)/m"), r.all)
        }
    }

    /// `vgg-dp model --corun K:FILE`: the co-run compute is used for hosts at
    /// its load and named in the document; a malformed K:FILE, or a report of
    /// another run, is refused with one message.
    func testModelTakesACoRunProfileAndRefusesAnotherRun() throws {
        let profile = path("one.json"), corun = path("corun.json"), other = path("other.json")
        for (file, batch) in [(profile, "2"), (corun, "2"), (other, "1")] {
            let r = try Launcher.run(tiny + ["--mode", "train", "--batch-size", batch, "--warmup", "0", "--steps", "2", "--report", file])
            XCTAssertEqual(r.status, 0, r.all)
        }
        let cores = try XCTUnwrap(try RunReport.read(from: corun).coresPerHost)
        let base = ["model", profile, "--link", "1gbit", "--latency", "50us", "--ranks", "1 2", "--ranks-per-host", "2",
                    "--cores-per-host", String(cores)]
        let ok = try Launcher.run(base + ["--corun", "2:" + corun])
        XCTAssertEqual(ok.status, 0, ok.all)
        XCTAssertTrue(ok.stdout.contains("- co-run: \(corun): 2 copies at once on \(cores) cores"), ok.all)
        for (args, message) in [
            (["--corun", corun], "--corun takes K:FILE with K ≥ 2 copies"),
            (["--corun", "1:" + corun], "--corun takes K:FILE with K ≥ 2 copies"),
            (["--corun", "2:" + other], "--corun \(other) is not the profile's run"),
        ] {
            let r = try Launcher.run(base + args)
            XCTAssertEqual(r.status, 2, "\(args): \(r.all)")
            XCTAssertTrue(r.stderr.contains(message), "\(args): \(r.all)")
            XCTAssertEqual(ourErrors(r.stderr).count, 1, r.stderr)
        }
    }

    // MARK: - 9. --threads beyond OpenBLAS

    func testThreadsBeyondOpenBLASAreClampedAndReported() throws {
        let report = path("r.json")
        let r = try Launcher.run(tiny + ["--batch-size", "1", "--warmup", "0", "--steps", "1", "--threads", "1000", "--report", report])
        XCTAssertEqual(r.status, 0, r.all)
        let shown = try XCTUnwrap(r.stdout.range(of: "BLAS threads per rank: ").map { Int(r.stdout[$0.upperBound...].prefix { $0.isNumber }) } ?? nil)
        let ran = try RunReport.read(from: report).blasThreads
        XCTAssertEqual(shown, ran, "the layout line and the report show the same count")
        XCTAssertLessThan(ran, 1000, "OpenBLAS builds cap threads far below 1000 (MAX_THREADS)")
        XCTAssertEqual(r.stdout.components(separatedBy: "note: --threads 1000: OpenBLAS here runs at most \(ran) threads per rank").count, 2,
                       "said once: \(r.stdout)")
    }

    // MARK: - 10. Sizes beyond memory or MPI's count

    func testPeakAndAllreduceSizesAreBoundedUpFront() throws {
        let peak = try Launcher.run(["peak", "--size", "10000000"])
        XCTAssertEqual(peak.status, 2, peak.all)
        XCTAssertTrue(peak.stderr.contains("--size 10000000 needs three 10000000×10000000 float matrices"), peak.all)
        XCTAssertTrue(peak.stderr.contains("available (MemAvailable): use --size"), peak.all)
        XCTAssertFalse(peak.all.contains("Fatal error") || peak.all.contains("cannot map"), peak.all)

        for ranks in [1, 2] {
            let big = try Launcher.run(["allreduce-bench"] + Launcher.tiny + ["--max-bytes", "9000000000"], ranks: ranks, timeout: 60)
            XCTAssertEqual(big.status, 2, big.all)
            XCTAssertTrue(big.stderr.contains("--max-bytes 9000000000 is more than MPI's element count allows: at most 2147483647 floats"), big.all)
            XCTAssertEqual(ourErrors(big.stderr).count, 1, big.stderr)
        }
        // Within MPI's count but over memory once every rank holds a buffer.
        let text = try String(contentsOfFile: "/proc/meminfo", encoding: .utf8)
        let line = try XCTUnwrap(text.split(separator: "\n").first { $0.hasPrefix("MemAvailable:") })
        let available = try XCTUnwrap(Int(line.split(separator: " ")[1])) * 1024
        let bytes = 8_589_934_588  // Int32.max floats
        guard 3 * bytes > available else { throw XCTSkip("\(available) bytes available: 3 ranks × 8 GiB fit") }
        let over = try Launcher.run(["allreduce-bench"] + Launcher.tiny + ["--max-bytes", String(bytes)], ranks: 3, timeout: 60)
        XCTAssertEqual(over.status, 2, over.all)
        XCTAssertTrue(over.stderr.contains("--max-bytes \(bytes) needs a 8.0 GiB buffer on each of the 3 rank(s)"), over.all)
        XCTAssertEqual(ourErrors(over.stderr).count, 1, over.stderr)
    }

    // MARK: - 11. The smaller ones

    func testCheckpointEveryBeyondTheRunWarns() throws {
        let r = try Launcher.run(tiny + ["--batch-size", "1", "--warmup", "1", "--steps", "2",
                                         "--checkpoint-dir", path("ck"), "--checkpoint-every", "5"], ranks: 2)
        XCTAssertEqual(r.status, 0, r.all)
        XCTAssertEqual(r.stderr.components(separatedBy: "vgg-dp: warning: --checkpoint-every 5 is more than this run's 3 steps").count, 2,
                       "once, from rank 0: \(r.stderr)")
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("ck/checkpoint.vggdp")))
    }

    func testVerifyRefusesBadToleranceAndForwardMode() throws {
        let cases: [([String], String)] = [
            (["--tolerance=-1"], "--tolerance must be a finite number ≥ 0, got -1.0"),
            (["--tolerance", "nan"], "--tolerance must be a finite number ≥ 0, got nan"),
            (["--mode", "forward"], "verify always trains"),
        ]
        for ranks in [1, 2] {
            for (args, message) in cases {
                let r = try Launcher.run(["verify"] + Launcher.tiny + ["--steps", "2"] + args, ranks: ranks, timeout: 60)
                XCTAssertEqual(r.status, 2, "\(args): \(r.all)")
                XCTAssertTrue(r.stderr.contains(message), "\(args): \(r.all)")
                XCTAssertEqual(ourErrors(r.stderr).count, 1, r.stderr)
                XCTAssertFalse(r.stdout.contains("verify:"), "refused before any work: \(r.all)")
            }
        }
    }

    func testVerifySaysWhen16BitRoundingIsOrIsNotTheCause() throws {
        let base = ["verify"] + Launcher.tiny + ["--batch-size", "2", "--warmup", "1", "--steps", "4", "--allreduce-dtype", "bf16"]
        let travelled = try Launcher.run(base + ["--exchange", "allreduce", "--tolerance", "0"], ranks: 2)
        XCTAssertEqual(travelled.status, 1, travelled.all)
        XCTAssertTrue(travelled.stdout.contains("note: the gradients travelled between ranks as bf16"), travelled.all)
        XCTAssertTrue(travelled.stdout.contains("--allreduce-dtype fp32; to accept bf16 rounding over these 5 steps, use --tolerance"), travelled.all)
        let shared = try Launcher.run(base + ["--exchange", "host-shared", "--tolerance", "0"], ranks: 2)
        XCTAssertEqual(shared.status, 1, shared.all)
        XCTAssertTrue(shared.stdout.contains("note: --allreduce-dtype bf16 is not the cause: with the host-shared exchange on one host"), shared.all)
    }

    func testReportRefusesAnUnknownSchemaAndNamesKeysAsWritten() throws {
        let good = path("good.json")
        let run = try Launcher.run(tiny + ["--batch-size", "1", "--warmup", "0", "--steps", "1", "--report", good])
        XCTAssertEqual(run.status, 0, run.all)
        var json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: good))) as? [String: Any])
        json["schema"] = 99
        let future = path("future.json")
        try JSONSerialization.data(withJSONObject: json).write(to: URL(fileURLWithPath: future))
        let r = try Launcher.run(["report", future])
        XCTAssertEqual(r.status, 2, r.all)
        XCTAssertTrue(r.stderr.contains("future.json has report schema 99; this tool reads schema 1"), r.all)

        json["schema"] = 1
        var ranks = try XCTUnwrap(json["per_rank"] as? [[String: Any]])
        ranks[0]["step_seconds"] = nil
        json["per_rank"] = ranks
        let broken = path("broken.json")
        try JSONSerialization.data(withJSONObject: json).write(to: URL(fileURLWithPath: broken))
        let b = try Launcher.run(["report", broken])
        XCTAssertEqual(b.status, 2, b.all)
        XCTAssertTrue(b.stderr.contains("missing key step_seconds at per_rank.[0]"), b.all)
        XCTAssertFalse(b.stderr.contains("perRank") || b.stderr.contains("stepSeconds"), b.all)
    }
}
