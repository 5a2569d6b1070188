import Foundation
import Reports
import TestSupport
@testable import Trainer
import XCTest

/// Elastic restart (`scripts/launch.sh --max-restarts`, scripts/lib/elastic.sh):
/// a job whose rank dies is relaunched from its newest checkpoint and ends
/// with the weights of an uninterrupted run; bad input is never restarted;
/// a job that keeps failing gives up; hosts that do not answer are left out.
final class ElasticTests: XCTestCase {
    let tiny = Launcher.tiny + ["--no-peak-probe"]
    let launch = Launcher.repoRoot.appendingPathComponent("scripts/launch.sh").path

    func checksum(_ text: String) -> String? {
        guard let range = text.range(of: "parameter checksum: ") else { return nil }
        return String(text[range.upperBound...].prefix(16))
    }

    /// The vgg-dp processes of MPI rank `rank` whose command line holds `marker`.
    func rankProcesses(marker: String, rank: Int) -> [pid_t] {
        Launcher.processes(marker: marker, environment: ["OMPI_COMM_WORLD_RANK=\(rank)"])
    }

    struct Job {
        var status: Int32
        var stdout: String
        var stderr: String
        var all: String { stdout + stderr }
    }

    /// Runs `scripts/launch.sh arguments` in the background; `whileRunning`
    /// gets to act on the job (it gets the launcher's pid); then waits for it, at most `timeout` seconds.
    func launchInBackground(_ arguments: [String], environment: [String: String] = [:], timeout: TimeInterval = 180,
                            whileRunning: (pid_t) throws -> Void) throws -> Job {
        let folder = Launcher.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let out = folder.appendingPathComponent("out"), err = folder.appendingPathComponent("err")
        _ = FileManager.default.createFile(atPath: out.path, contents: nil)
        _ = FileManager.default.createFile(atPath: err.path, contents: nil)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/bash")
        p.arguments = [launch] + arguments
        var env = ProcessInfo.processInfo.environment
        env["VGGDP_BIN"] = Launcher.binary
        env["VGGDP_OPENBLAS_KERNEL"] = "keep"
        for (k, v) in environment { env[k] = v }
        p.environment = env
        p.standardOutput = try FileHandle(forWritingTo: out)
        p.standardError = try FileHandle(forWritingTo: err)
        p.standardInput = FileHandle.nullDevice
        try p.run()
        defer { if p.isRunning { kill(p.processIdentifier, SIGKILL) } }
        try whileRunning(p.processIdentifier)
        let deadline = Date().addingTimeInterval(timeout)
        while p.isRunning && Date() < deadline { usleep(50_000) }
        if p.isRunning {
            kill(p.processIdentifier, SIGTERM)
            p.waitUntilExit()
            XCTFail("the job did not end within \(timeout) s")
        }
        p.waitUntilExit()
        return Job(status: p.terminationStatus,
                               stdout: (try? String(contentsOf: out, encoding: .utf8)) ?? "",
                               stderr: (try? String(contentsOf: err, encoding: .utf8)) ?? "")
    }

    struct TimedOut: Error, CustomStringConvertible {
        var description: String
    }

    /// Waits (at most `seconds`) until `condition` holds; throws after that.
    func waitFor(_ seconds: Double, _ what: String, _ condition: () -> Bool) throws {
        let deadline = Date().addingTimeInterval(seconds)
        while !condition() {
            guard Date() < deadline else { throw TimedOut(description: "timed out after \(seconds) s waiting for \(what)") }
            usleep(20_000)
        }
    }

    /// 2 ranks, a checkpoint every 2 steps; rank 1 is killed with SIGKILL from
    /// outside once the first checkpoint is there; `--max-restarts 1`
    /// relaunches from the checkpoint; the job finishes with the checksum of
    /// an uninterrupted run, and its report lists the restart.
    func testKilledRankIsRestartedFromItsCheckpointAndEndsAsAnUninterruptedRun() throws {
        let folder = Launcher.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let marker = "918273645" // the seed: a number no other test uses, to find this job's ranks
        let base = tiny + ["--batch-size", "1", "--warmup", "2", "--steps", "60", "--seed", marker]
        let whole = try Launcher.run(base, ranks: 2)
        XCTAssertEqual(whole.status, 0, whole.all)
        let expected = try XCTUnwrap(checksum(whole.stdout), whole.all)

        let dir = folder.appendingPathComponent("ck"), report = folder.appendingPathComponent("r.json").path
        let checkpoint = dir.appendingPathComponent("checkpoint.vggdp").path
        var killed: [pid_t] = []
        let r = try launchInBackground(["-n", "2", "--max-restarts", "1", "--"] + base
                                       + ["--checkpoint-dir", dir.path, "--checkpoint-every", "2", "--report", report]) { _ in
            try waitFor(120, "the first checkpoint") { FileManager.default.fileExists(atPath: checkpoint) }
            try waitFor(10, "rank 1's process") { !rankProcesses(marker: marker, rank: 1).isEmpty }
            killed = rankProcesses(marker: marker, rank: 1)
            for pid in killed { kill(pid, SIGKILL) }
        }
        XCTAssertEqual(killed.count, 1, "one rank 1 process")
        XCTAssertEqual(r.status, 0, r.all)
        XCTAssertTrue(r.stderr.contains("launch.sh: restart 1 of 1: rank 1 on node"), r.all)
        XCTAssertTrue(r.stderr.contains("exited on signal 9 (Killed)"), r.all)
        XCTAssertTrue(r.stdout.contains("resumed from \(dir.path) at step"), r.all)
        XCTAssertEqual(checksum(r.stdout), expected, "the restarted job ends with the uninterrupted run's weights: \(r.all)")

        let restarts = try XCTUnwrap(try RunReport.read(from: report).restarts)
        XCTAssertEqual(restarts.count, 1)
        let restart = try XCTUnwrap(restarts.first)
        XCTAssertEqual(restart.restart, 1)
        XCTAssertTrue(restart.lost.hasPrefix("rank 1 on node ") && restart.lost.hasSuffix("exited on signal 9 (Killed)"), restart.lost)
        XCTAssertEqual(restart.exitStatus, 137)
        XCTAssertEqual(restart.ranks, 2)
        XCTAssertEqual(restart.hostsLeftOut, [])
        let from = try XCTUnwrap(restart.resumedFromStep)
        XCTAssertTrue(from >= 2 && from < 62 && from % 2 == 0, "a checkpoint step: \(from)")
        XCTAssertTrue(r.stdout.contains("resumed from \(dir.path) at step \(from)"), r.all)
        XCTAssertGreaterThanOrEqual(try XCTUnwrap(restart.lastStepSeen), from - 1)
        XCTAssertLessThanOrEqual(restart.stepsRecomputedMin, restart.stepsRecomputedMax)
        XCTAssertLessThanOrEqual(restart.stepsRecomputedMax, 2, "at most the checkpoint interval")
        XCTAssertNotNil(ISO8601DateFormatter().date(from: restart.at), restart.at)
        XCTAssertTrue(r.stdout.contains("restart 1 at \(restart.at): \(restart.lost) (exit 137); resumed from step \(from) on 2 rank(s)"), r.all)
        // The log the launcher wrote: one line.
        let log = try String(contentsOf: dir.appendingPathComponent("restarts.jsonl"), encoding: .utf8)
        XCTAssertEqual(log.split(separator: "\n").count, 1, log)
        XCTAssertEqual(rankProcesses(marker: marker, rank: 0) + rankProcesses(marker: marker, rank: 1), [], "no rank left behind")
    }

    /// Bad input ends the job with status 2 and is not restarted; so is a
    /// launch without a checkpoint folder, and a second --restart-log.
    func testBadInputIsNotRestarted() throws {
        let folder = Launcher.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let dir = folder.appendingPathComponent("ck").path
        let bad = try Launcher.command(["bash", launch, "-n", "2", "--max-restarts", "3", "--"] + tiny
                                       + ["--steps", "4", "--momentum", "2", "--checkpoint-dir", dir, "--checkpoint-every", "2"],
                                       timeout: 60, environment: ["VGGDP_BIN": Launcher.binary])
        XCTAssertEqual(bad.status, 2, bad.all)
        XCTAssertTrue(bad.stderr.contains("--momentum must be a finite number in [0, 1), got 2.0"), bad.all)
        XCTAssertTrue(bad.stderr.contains("launch.sh: not restarted: vgg-dp refused its input (exit 2)"), bad.all)
        XCTAssertEqual(bad.stderr.components(separatedBy: "+ mpirun").count - 1, 1, "launched once: \(bad.stderr)")
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/restarts.jsonl"))

        let noFolder = try Launcher.command(["bash", launch, "-n", "2", "--max-restarts", "1", "--"] + tiny + ["--steps", "4"],
                                            timeout: 60, environment: ["VGGDP_BIN": Launcher.binary])
        XCTAssertEqual(noFolder.status, 2, noFolder.all)
        XCTAssertTrue(noFolder.stderr.contains("launch.sh: --max-restarts relaunches from the checkpoints in --checkpoint-dir"), noFolder.all)
        XCTAssertFalse(noFolder.stderr.contains("+ mpirun"), noFolder.all)

        let ownLog = try Launcher.command(["bash", launch, "-n", "2", "--max-restarts", "1", "--"] + tiny
                                          + ["--checkpoint-dir", dir, "--checkpoint-every", "2", "--restart-log", dir + "/x"],
                                          timeout: 60, environment: ["VGGDP_BIN": Launcher.binary])
        XCTAssertEqual(ownLog.status, 2, ownLog.all)
        XCTAssertTrue(ownLog.stderr.contains("--restart-log is set by launch.sh --max-restarts"), ownLog.all)

        let notTraining = try Launcher.command(["bash", launch, "-n", "2", "--max-restarts", "1", "--", "verify"] + tiny,
                                               timeout: 60, environment: ["VGGDP_BIN": Launcher.binary])
        XCTAssertEqual(notTraining.status, 2, notTraining.all)
        XCTAssertTrue(notTraining.stderr.contains("--max-restarts restarts training runs: 'vgg-dp verify' is not one"), notTraining.all)

        // A restart log vgg-dp cannot read is bad input too.
        try Data("{\"restart\": 1}\n".utf8).write(to: URL(fileURLWithPath: folder.appendingPathComponent("log").path))
        let badLog = try Launcher.run(tiny + ["--steps", "1", "--restart-log", folder.appendingPathComponent("log").path], ranks: 2)
        XCTAssertEqual(badLog.status, 2, badLog.all)
        XCTAssertTrue(badLog.stderr.contains("line 1 is not a restart record of scripts/lib/elastic.sh (no at)"), badLog.all)
    }

    /// SIGTERM to the launcher goes on to the job: rank 0 writes its partial
    /// report, and the job is not restarted.
    func testSignalToTheLauncherStopsTheJobWithoutARestart() throws {
        let folder = Launcher.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let dir = folder.appendingPathComponent("ck"), report = folder.appendingPathComponent("r.json").path
        var launcher: pid_t = 0
        let r = try launchInBackground(["-n", "2", "--max-restarts", "3", "--"] + tiny
                                       + ["--batch-size", "1", "--warmup", "0", "--steps", "100000", "--checkpoint-dir", dir.path,
                                          "--checkpoint-every", "5", "--report", report]) { pid in
            let checkpoint = dir.appendingPathComponent("checkpoint.vggdp").path
            try waitFor(120, "the first checkpoint") { FileManager.default.fileExists(atPath: checkpoint) }
            launcher = pid
            kill(pid, SIGTERM)
        }
        XCTAssertGreaterThan(launcher, 0, "found the launcher")
        XCTAssertEqual(r.status, 128 + 15, r.all)
        XCTAssertTrue(r.stderr.contains("launch.sh: stopped by SIGTERM: the job is not restarted"), r.all)
        XCTAssertEqual(r.stderr.components(separatedBy: "+ mpirun").count - 1, 1, "launched once: \(r.stderr)")
        let partial = try RunReport.read(from: report)
        XCTAssertFalse(partial.complete)
        XCTAssertTrue(partial.note?.contains("stopped by signal 15") ?? false, partial.note ?? "no note")
        XCTAssertEqual(partial.restarts, [], "launched with restarts, none made")
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("restarts.jsonl").path))
    }

    /// A rank that dies at the same step every time: each relaunch resumes
    /// from the checkpoint before it; after K restarts the launcher gives up
    /// with the job's status and says so.
    func testRestartsExhaustedGiveUpWithAClearMessage() throws {
        let folder = Launcher.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let dir = folder.appendingPathComponent("ck")
        // Checkpoints after steps 1 and 3 (0-based): every run dies at step 5 and resumes at 4.
        let r = try Launcher.command(["bash", launch, "-n", "2", "--max-restarts", "2", "--"] + tiny
                                     + ["--batch-size", "1", "--warmup", "0", "--steps", "8", "--checkpoint-dir", dir.path,
                                        "--checkpoint-every", "2", "--inject-fault", "kill:1:5"],
                                     timeout: 180, environment: ["VGGDP_BIN": Launcher.binary])
        XCTAssertEqual(r.status, 137, r.all)
        XCTAssertEqual(r.stderr.components(separatedBy: "+ mpirun").count - 1, 3, "launched 1 + 2 times: \(r.stderr)")
        XCTAssertTrue(r.stderr.contains("launch.sh: restart 2 of 2: rank 1 on node"), r.all)
        XCTAssertTrue(r.stderr.contains("launch.sh: giving up after 2 restart(s) (--max-restarts 2): rank 1 on node"), r.all)
        XCTAssertTrue(r.stderr.contains("the newest checkpoint is in \(dir.path)"), r.all)
        let lines = try String(contentsOf: dir.appendingPathComponent("restarts.jsonl"), encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines.count, 2)
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let records = try lines.map { try decoder.decode(Restart.self, from: Data($0.utf8)) }
        XCTAssertEqual(records.map(\.restart), [1, 2])
        XCTAssertEqual(records.map(\.resumedFromStep), [4, 4])
        // Each run completed step 4 before rank 1 died at 5; the launcher can
        // bound it by the checkpoint interval, 2 steps.
        XCTAssertEqual(records.map(\.stepsRecomputedMax), [2, 2])
        XCTAssertEqual(records.map(\.lastStepSeen), [3, 3], "the checkpoint at 4 says step 3 was done")
    }

    /// The parent of process `pid` (/proc/PID/stat's fourth field).
    func parent(of pid: pid_t) -> pid_t? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        return fields.count > 1 ? pid_t(fields[1]) : nil
    }

    /// A host lost in the middle of a job. The hostfile's second host,
    /// "ghost-host", is this machine through an rsh agent that starts Open
    /// MPI's daemon in a UTS namespace of that name (so vgg-dp sees two
    /// hosts, one rank each) until a file says the host is down. After the
    /// first checkpoint the test marks it down and kills its daemon and rank
    /// (SIGKILL); mpirun loses the daemon; the launcher's probe finds the
    /// host silent and leaves it out, and the job resumes on the one rank
    /// left, on the same global batch. It must end with the weights of the
    /// same history run without a failure: 2 ranks up to the checkpoint's
    /// step, then 1 rank from that checkpoint.
    func testHostLostMidRunIsLeftOutAndTheJobGoesOnWithTheRanksLeft() throws {
        let folder = Launcher.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let down = folder.appendingPathComponent("ghost-is-down").path
        let agent = folder.appendingPathComponent("agent").path
        try Data("""
            #!/bin/sh
            host="$1"; shift
            [ -e '\(down)' ] && { echo "test agent: $host is down" >&2; exit 255; }
            exec unshare --uts sh -c 'hostname "$1" && exec sh -c "$2"' sh "$host" "$*"

            """.utf8).write(to: URL(fileURLWithPath: agent))
        chmod(agent, 0o755)
        let hostfile = folder.appendingPathComponent("hosts").path
        try Data("localhost slots=1\nghost-host slots=1\n".utf8).write(to: URL(fileURLWithPath: hostfile))
        // TMPDIR: the launcher's temporary files go there, and must be gone at the end.
        let temporary = folder.appendingPathComponent("tmp")
        try FileManager.default.createDirectory(at: temporary, withIntermediateDirectories: true)
        let environment = ["MPIRUN_ARGS": "--mca plm_rsh_agent \(agent)", "VGGDP_PROBE_TIMEOUT": "30", "TMPDIR": temporary.path]
        let marker = "564738291"
        let base = tiny + ["--batch-size", "1", "--warmup", "0", "--seed", marker, "--exchange", "allreduce"]
        let dir = folder.appendingPathComponent("ck"), report = folder.appendingPathComponent("r.json").path
        let checkpoint = dir.appendingPathComponent("checkpoint.vggdp").path

        var killed: [pid_t] = []
        let r = try launchInBackground(["-n", "2", "--hostfile", hostfile, "--max-restarts", "1", "--"] + base
                                       + ["--steps", "60", "--checkpoint-dir", dir.path, "--checkpoint-every", "2", "--report", report],
                                       environment: environment) { _ in
            try waitFor(120, "the first checkpoint") { FileManager.default.fileExists(atPath: checkpoint) }
            try waitFor(10, "rank 1's process") { !rankProcesses(marker: marker, rank: 1).isEmpty }
            _ = FileManager.default.createFile(atPath: down, contents: nil)
            for rank in rankProcesses(marker: marker, rank: 1) {
                killed.append(rank)
                // Its daemon: the rank's parent, Open MPI's orted.
                if let daemon = parent(of: rank),
                   (try? String(contentsOfFile: "/proc/\(daemon)/comm", encoding: .utf8))?.hasPrefix("orted") == true {
                    killed.append(daemon)
                }
            }
            for pid in killed { kill(pid, SIGKILL) }
        }
        XCTAssertEqual(killed.count, 2, "rank 1 and its daemon")
        XCTAssertEqual(r.status, 0, r.all)
        XCTAssertTrue(r.stderr.contains("launch.sh: host ghost-host does not answer"), r.all)
        let restart = try XCTUnwrap(try RunReport.read(from: report).restarts?.first, r.all)
        // mpirun names the lost daemon, the rank that died with it, or both: each on ghost-host.
        XCTAssertTrue(restart.lost.contains("lost contact with the Open MPI daemon on node ghost-host (host lost)")
                      || restart.lost.hasPrefix("rank 1 on node ghost-host exited on signal 9"), restart.lost + "\n" + r.all)
        XCTAssertEqual(restart.hostsLeftOut, ["ghost-host"])
        XCTAssertEqual(restart.ranks, 1)
        let from = try XCTUnwrap(restart.resumedFromStep)
        XCTAssertTrue(r.stdout.contains("ranks: 1 on 1 host(s)"), r.all)
        XCTAssertTrue(r.stdout.contains("resumed from \(dir.path) at step \(from)"), r.all)

        // The same history without a failure, on the same two hosts.
        try FileManager.default.removeItem(atPath: down)
        let prefix = folder.appendingPathComponent("prefix")
        let first = try Launcher.command(["bash", launch, "-n", "2", "--hostfile", hostfile, "--"] + base
                                         + ["--steps", String(from), "--checkpoint-dir", prefix.path, "--checkpoint-every", "2"],
                                         timeout: 120, environment: environment.merging(["VGGDP_BIN": Launcher.binary]) { $1 })
        XCTAssertEqual(first.status, 0, first.all)
        let rest = try Launcher.run(tiny + ["--global-batch", "2", "--warmup", "0", "--seed", marker, "--steps", "60",
                                            "--resume", prefix.path])
        XCTAssertEqual(rest.status, 0, rest.all)
        XCTAssertEqual(checksum(r.stdout), try XCTUnwrap(checksum(rest.stdout), rest.all), r.all)
        let leftovers = (try? FileManager.default.contentsOfDirectory(atPath: temporary.path))?.filter { $0.hasPrefix("vggdp-elastic-") }
        XCTAssertEqual(leftovers, [], "the launcher's temporary files (its output, the hostfile of the hosts left) are gone")
    }

    /// A hostfile whose second host does not answer (an rsh agent that
    /// refuses it): the first launch fails, the probe leaves the host out,
    /// and the job goes on with the rank left, on the same global batch, as
    /// a one-rank run of that batch does; when the ranks left do not divide
    /// the global batch, the launcher stops and says why.
    func testHostThatDoesNotAnswerIsLeftOut() throws {
        let folder = Launcher.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let agent = folder.appendingPathComponent("agent").path
        try Data("#!/bin/sh\necho \"test agent: host $1 does not answer\" >&2\nexit 255\n".utf8).write(to: URL(fileURLWithPath: agent))
        chmod(agent, 0o755)
        let hostfile = folder.appendingPathComponent("hosts").path
        try Data("localhost slots=1\nghost-host slots=1\n".utf8).write(to: URL(fileURLWithPath: hostfile))
        let environment = ["VGGDP_BIN": Launcher.binary, "MPIRUN_ARGS": "--mca plm_rsh_agent \(agent)", "VGGDP_PROBE_TIMEOUT": "30"]
        let base = tiny + ["--batch-size", "1", "--warmup", "0", "--steps", "6"]
        let dir = folder.appendingPathComponent("ck").path, report = folder.appendingPathComponent("r.json").path

        let r = try Launcher.command(["bash", launch, "-n", "2", "--hostfile", hostfile, "--max-restarts", "1", "--"] + base
                                     + ["--checkpoint-dir", dir, "--checkpoint-every", "2", "--report", report],
                                     timeout: 180, environment: environment)
        XCTAssertEqual(r.status, 0, r.all)
        XCTAssertTrue(r.stderr.contains("launch.sh: host ghost-host does not answer"), r.all)
        XCTAssertTrue(r.stderr.contains("no checkpoint yet: starting again from the beginning on 1 rank(s)"), r.all)
        XCTAssertTrue(r.stderr.contains("--global-batch 2"), "per-rank batch 1 × 2 ranks becomes the global batch: \(r.stderr)")
        let one = try Launcher.run(tiny + ["--global-batch", "2", "--warmup", "0", "--steps", "6"])
        XCTAssertEqual(one.status, 0, one.all)
        XCTAssertEqual(checksum(r.stdout), try XCTUnwrap(checksum(one.stdout)), r.all)
        let restart = try XCTUnwrap(try RunReport.read(from: report).restarts?.first)
        XCTAssertEqual(restart.hostsLeftOut, ["ghost-host"])
        XCTAssertEqual(restart.ranks, 1)
        XCTAssertNil(restart.resumedFromStep)
        XCTAssertTrue(restart.lost.contains("daemon could not be started"), restart.lost)

        // 3 ranks, 2 on localhost: the 2 left do not divide a global batch of 3.
        try Data("localhost slots=2\nghost-host slots=1\n".utf8).write(to: URL(fileURLWithPath: hostfile))
        let stop = try Launcher.command(["bash", launch, "-n", "3", "--hostfile", hostfile, "--max-restarts", "1", "--"] + tiny
                                        + ["--global-batch", "3", "--steps", "2", "--checkpoint-dir", dir, "--checkpoint-every", "2"],
                                        timeout: 180, environment: environment)
        XCTAssertNotEqual(stop.status, 0, stop.all)
        XCTAssertNotEqual(stop.status, 2, stop.all)
        XCTAssertTrue(stop.stderr.contains("host(s) ghost-host do not answer, and the global batch 3 does not divide by the 2 rank(s) left on the others"), stop.all)
        XCTAssertEqual(stop.stderr.components(separatedBy: "+ mpirun").count - 1, 1, stop.stderr)
    }
}
