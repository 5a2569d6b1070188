import Foundation
import TestSupport
@testable import Trainer
import Reports
import XCTest

/// scripts/slurm/vgg-dp.sbatch on a real Slurm: scripts/slurm/local-cluster.sh
/// brings up a one-node cluster (Debian's slurm-wlm and munge, installed by
/// the script when missing) in a folder of the test's own, `sbatch --wait`
/// runs the study at a tiny configuration with 2 tasks on the node, and the
/// cluster is taken down whatever happened.
final class SlurmTests: XCTestCase {
    func script(_ name: String) -> String { Launcher.repoRoot.appendingPathComponent("scripts/\(name)").path }

    /// 2 ranks × batch 2 of the tiny model, a few steps; the study adds
    /// --batch-size, --threads and --report.
    let study = Launcher.tiny + ["--steps", "3", "--warmup", "1", "--no-peak-probe"]

    struct Job {
        var id: String
        var output: String
        var folder: URL
    }

    /// The sbatch study with the script's automatic choice of launcher and
    /// `srunMPI` as the plugin it asks srun for (nil: its default, pmix);
    /// its results in `folder`.
    func submit(srunMPI: String?, into folder: URL, environment: [String: String]) throws -> Job {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        var env = environment
        env["OUT"] = folder.path
        env["VGGDP_BIN"] = Launcher.binary
        env["BATCH"] = "2"
        if let srunMPI { env["SRUN_MPI"] = srunMPI }
        let r = try Launcher.command(["sbatch", "--wait", "--nodes=1", "--ntasks-per-node=2", "--cpus-per-task=1",
                                      "--time=00:10:00", "--chdir=\(folder.path)",
                                      "--output=\(folder.path)/job-%j.out", script("slurm/vgg-dp.sbatch")] + study,
                                     timeout: 600, environment: env)
        let id = r.stdout.components(separatedBy: "Submitted batch job ").dropFirst().first?
            .prefix { $0.isNumber } ?? ""
        let output = (try? String(contentsOf: folder.appendingPathComponent("job-\(id).out"), encoding: .utf8)) ?? ""
        print("sbatch (SRUN_MPI=\(srunMPI ?? "default")): exit \(r.status)\n\(r.all)\(output)")
        XCTAssertEqual(r.status, 0, "sbatch --wait: \(r.all)\njob output:\n\(output)")
        XCTAssertFalse(id.isEmpty, r.all)
        return Job(id: String(id), output: output, folder: folder)
    }

    /// The run report of a study with 2 ranks, as the JSON readers see it and
    /// as vgg-dp reads it back; returns its parameter checksum.
    func checkReport(_ job: Job, file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let path = job.folder.appendingPathComponent("ranks-2.json").path
        XCTAssertTrue(FileManager.default.fileExists(atPath: path), "no \(path); job output:\n\(job.output)", file: file, line: line)
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any], file: file, line: line)
        XCTAssertEqual(json["ranks"] as? Int, 2, file: file, line: line)
        XCTAssertEqual(json["complete"] as? Bool, true, file: file, line: line)
        let checksum = try XCTUnwrap(json["parameter_checksum"] as? String, file: file, line: line)
        XCTAssertEqual(checksum.count, 16, file: file, line: line)

        let report = try RunReport.read(from: path)
        XCTAssertEqual(report.batchPerRank, 2, file: file, line: line)
        XCTAssertEqual(report.globalBatch, 4, file: file, line: line)
        XCTAssertEqual(report.blasThreads, 1, file: file, line: line)
        XCTAssertEqual(report.perRank.map(\.rank), [0, 1], file: file, line: line)
        XCTAssertEqual(report.perRank.map { $0.steps.count }, [3, 3], file: file, line: line)
        XCTAssertEqual(Set(report.hosts).count, 1, "one node: \(report.hosts)", file: file, line: line)

        // The rest of the study: its report, and the interconnect's fit.
        for name in ["report.md", "report.csv", "allreduce.json"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: job.folder.appendingPathComponent(name).path),
                          "no \(name); job output:\n\(job.output)", file: file, line: line)
        }
        let bench = try JSONSerialization.jsonObject(with: Data(contentsOf: job.folder.appendingPathComponent("allreduce.json")))
        XCTAssertEqual((bench as? [String: Any])?["ranks"] as? Int, 2, file: file, line: line)
        XCTAssertTrue(job.output.contains("vgg-dp.sbatch: done"), job.output, file: file, line: line)
        return checksum
    }

    func testSbatchStudyOnALocalSlurm() throws {
        let folder = Launcher.temporaryFolder()
        let slurmDir = folder.appendingPathComponent("slurm")
        // Its own folder and ports: a cluster brought up by hand (in .slurm-local) is left alone.
        let clusterEnv = ["VGGDP_SLURM_DIR": slurmDir.path, "VGGDP_SLURM_PORT": "16917"]
        let cluster = script("slurm/local-cluster.sh")

        // Down in every case, and nothing of it left: no process, no folder.
        addTeardownBlock {
            let down = try Launcher.command(["bash", cluster, "down"], timeout: 120, environment: clusterEnv)
            XCTAssertEqual(down.status, 0, "local-cluster.sh down: \(down.all)")
            let status = try Launcher.command(["bash", cluster, "status"], timeout: 60, environment: clusterEnv)
            XCTAssertEqual(status.status, 3, "local-cluster.sh status after down: \(status.all)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: slurmDir.path), "\(slurmDir.path) is still there")
            try? FileManager.default.removeItem(at: folder)
        }

        let up = try Launcher.command(["bash", cluster, "up"], timeout: 900, environment: clusterEnv)
        print("local-cluster.sh up: exit \(up.status)\n\(up.all)")
        if up.status == 4 {
            throw XCTSkip("slurm-wlm and munge cannot be installed on this machine: \(up.all)")
        }
        XCTAssertEqual(up.status, 0, "local-cluster.sh up: \(up.all)")
        guard up.status == 0 else { return }
        let status = try Launcher.command(["bash", cluster, "status"], timeout: 60, environment: clusterEnv)
        XCTAssertEqual(status.status, 0, status.all)
        for daemon in ["munged", "slurmctld", "slurmd"] {
            XCTAssertTrue(status.stdout.contains("\(daemon): running"), status.all)
        }

        let conf = slurmDir.appendingPathComponent("slurm.conf").path
        let env = clusterEnv.merging(["SLURM_CONF": conf]) { $1 }
        let plugins = try Launcher.command(["srun", "--mpi=list"], timeout: 60, environment: env)
        print("srun --mpi=list: exit \(plugins.status)\n\(plugins.all)")

        // The script's own choice: srun with PMIx where Slurm has it, else mpirun in the allocation.
        let auto = try submit(srunMPI: nil, into: folder.appendingPathComponent("auto"), environment: env)
        let chosen = auto.output.split(separator: "\n").first { $0.hasPrefix("vgg-dp.sbatch: launcher: ") }
        XCTAssertNotNil(chosen, "the job does not say which launcher it took:\n\(auto.output)")
        let log = (try? String(contentsOf: auto.folder.appendingPathComponent("ranks-2.log"), encoding: .utf8)) ?? ""
        let offersPMIx = plugins.stdout.split(separator: "\n").contains { $0.trimmingCharacters(in: .whitespaces) == "pmix" }
        if offersPMIx {
            // Debian 12's Open MPI 4.1 talks PMIx: srun starts the ranks itself.
            XCTAssertEqual(chosen, "vgg-dp.sbatch: launcher: srun --mpi=pmix (srun --mpi=list offers 'pmix')", auto.output)
        }
        if chosen?.hasPrefix("vgg-dp.sbatch: launcher: srun --mpi=") == true {
            XCTAssertTrue(log.hasPrefix("+ srun --mpi="), log)
        } else {
            XCTAssertTrue(chosen?.hasPrefix("vgg-dp.sbatch: launcher: mpirun inside the allocation") == true, auto.output)
            XCTAssertTrue(log.hasPrefix("+ mpirun "), log)
        }
        let autoChecksum = try checkReport(auto)

        // A plugin srun lacks: the script takes mpirun inside the allocation
        // by itself, and says why; the same run, to the bit.
        let mpirun = try submit(srunMPI: "no-such-plugin", into: folder.appendingPathComponent("mpirun"), environment: env)
        XCTAssertTrue(mpirun.output.contains(
            "vgg-dp.sbatch: launcher: mpirun inside the allocation (srun --mpi=list offers no 'no-such-plugin'"), mpirun.output)
        let mpirunLog = (try? String(contentsOf: mpirun.folder.appendingPathComponent("ranks-2.log"), encoding: .utf8)) ?? ""
        XCTAssertTrue(mpirunLog.hasPrefix("+ mpirun "), mpirunLog)
        XCTAssertEqual(try checkReport(mpirun), autoChecksum, "srun and mpirun launches of one configuration differ")

        // And the same configuration outside Slurm (scripts/launch.sh).
        let path = folder.appendingPathComponent("outside.json").path
        let outside = try Launcher.run(study + ["--batch-size", "2", "--threads", "1", "--report", path], ranks: 2)
        XCTAssertEqual(outside.status, 0, outside.all)
        XCTAssertEqual(try RunReport.read(from: path).parameterChecksum, autoChecksum,
                       "a Slurm job and scripts/launch.sh of one configuration differ")

        try elasticRestart(environment: env, folder: folder.appendingPathComponent("elastic"))
    }

    /// MAX_RESTARTS=1: rank 1 of the study's run is killed (SIGKILL, from
    /// outside) after its first checkpoint; the run is relaunched inside the
    /// allocation from the checkpoint and ends with the weights of the same
    /// run outside Slurm; its report lists the restart.
    func elasticRestart(environment: [String: String], folder: URL) throws {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let marker = "192837465" // the seed: finds this job's ranks
        let args = Launcher.tiny + ["--steps", "40", "--warmup", "1", "--no-peak-probe", "--seed", marker]
        var env = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        env["OUT"] = folder.path
        env["VGGDP_BIN"] = Launcher.binary
        env["VGGDP_OPENBLAS_KERNEL"] = "keep"
        env["BATCH"] = "2"
        env["MAX_RESTARTS"] = "1"
        env["CHECKPOINT_EVERY"] = "2"
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/timeout")
        p.arguments = ["-k", "5", "600", "sbatch", "--wait", "--nodes=1", "--ntasks-per-node=2", "--cpus-per-task=1",
                       "--time=00:10:00", "--chdir=\(folder.path)", "--output=\(folder.path)/job.out",
                       script("slurm/vgg-dp.sbatch")] + args
        p.environment = env
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        let checkpoint = folder.appendingPathComponent("checkpoints-ranks-2/checkpoint.vggdp").path
        var killed: [pid_t] = []
        let deadline = Date().addingTimeInterval(300)
        while killed.isEmpty && p.isRunning && Date() < deadline {
            if FileManager.default.fileExists(atPath: checkpoint) {
                killed = Launcher.processes(marker: marker, environment: ["OMPI_COMM_WORLD_RANK=1", "PMIX_RANK=1"])
                for pid in killed { kill(pid, SIGKILL) }
            }
            usleep(20_000)
        }
        p.waitUntilExit()
        let output = (try? String(contentsOf: folder.appendingPathComponent("job.out"), encoding: .utf8)) ?? ""
        let log = (try? String(contentsOf: folder.appendingPathComponent("ranks-2.log"), encoding: .utf8)) ?? ""
        print("sbatch MAX_RESTARTS=1: exit \(p.terminationStatus)\n\(output)\nranks-2.log:\n\(log)")
        XCTAssertEqual(p.terminationStatus, 0, "sbatch --wait with MAX_RESTARTS=1:\n\(output)\n\(log)")
        XCTAssertEqual(killed.count, 1, "one rank 1 process killed:\n\(output)\n\(log)")
        XCTAssertTrue(output.contains("restarted up to 1 time(s) (MAX_RESTARTS)"), output)
        XCTAssertTrue(output.contains("vgg-dp.sbatch: restart 1 of 1: rank 1 on node"), output + log)
        let report = try RunReport.read(from: folder.appendingPathComponent("ranks-2.json").path)
        let restarts = try XCTUnwrap(report.restarts)
        XCTAssertEqual(restarts.count, 1, log)
        XCTAssertTrue(restarts.first?.lost.hasPrefix("rank 1 on node") == true, restarts.first?.lost ?? "")
        XCTAssertNotNil(restarts.first?.resumedFromStep, log)

        let outside = try Launcher.run(args + ["--batch-size", "2", "--threads", "1"], ranks: 2)
        XCTAssertEqual(outside.status, 0, outside.all)
        XCTAssertTrue(outside.stdout.contains("parameter checksum: \(report.parameterChecksum)"),
                      "the restarted Slurm run ends as the uninterrupted one: \(report.parameterChecksum)\n\(outside.stdout)")
    }
}
