import Foundation
import Reports
import TestSupport
@testable import Trainer
import Vocabulary
import XCTest

/// A 2-host job on the simulated cluster (scripts/cluster.sh: network
/// namespaces on a bridge, TCP between them, one rank per namespace): it must
/// train, its replicas must agree, and each rank must report its own host.
/// Uses its own cluster id, so a cluster someone has up for benchmarks is left
/// alone, and always takes it down again.
final class ClusterTests: XCTestCase {
    static let clusterID = "201"
    let script = Launcher.repoRoot.appendingPathComponent("scripts/cluster.sh").path
    var environment: [String: String] { ["VGGDP_CLUSTER_ID": ClusterTests.clusterID, "VGGDP_BIN": Launcher.binary] }
    let hosts = ["vggdp\(ClusterTests.clusterID)-h1", "vggdp\(ClusterTests.clusterID)-h2"]

    /// Skips, saying why, where this machine cannot make network namespaces
    /// (not root, no CAP_SYS_ADMIN/CAP_NET_ADMIN, no veth or bridge support).
    func requireNamespaces() throws {
        let probe = try Launcher.command(["bash", script, "check"], timeout: 30, environment: environment)
        if probe.status != 0 {
            throw XCTSkip("the simulated cluster needs Linux network namespaces, which cannot be created here: "
                          + probe.stderr.trimmingCharacters(in: .whitespacesAndNewlines))
        }
    }

    func cluster(_ arguments: [String], timeout: Int = 150) throws -> Launcher.Result {
        try Launcher.command(["bash", script] + arguments, timeout: timeout, environment: environment)
    }

    func testTwoHostJobTrainsWithIdenticalReplicasAndOneHostPerRank() throws {
        try requireNamespaces()
        // Down even when an assertion fails or a run times out.
        defer { _ = try? cluster(["down"], timeout: 60) }

        let folder = Launcher.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let report = folder.appendingPathComponent("cluster.json").path
        let train = try cluster(["run", "2", "--rate", "1gbit", "--"] + Launcher.tiny
                                + ["--batch-size", "2", "--warmup", "1", "--steps", "3", "--threads", "1",
                                   "--bucket-mb", "0.1", "--no-peak-probe", "--report", report])
        XCTAssertEqual(train.status, 0, train.all)
        // The mpirun command it used: TCP between hosts, launched through the agent.
        XCTAssertTrue(train.stderr.contains("+ mpirun -n 2"), train.stderr)
        XCTAssertTrue(train.stderr.contains("plm_rsh_agent"), train.stderr)
        XCTAssertTrue(train.stderr.contains("--mca btl tcp\\,self") || train.stderr.contains("--mca btl tcp,self"), train.stderr)
        XCTAssertTrue(train.stdout.contains("Train across 3 steps"), train.all)
        XCTAssertTrue(train.stdout.contains("(identical on all 2 rank(s))"), train.all)
        XCTAssertTrue(train.stdout.contains("ranks: 2 on 2 host(s)"), train.all)
        let r = try RunReport.read(from: report)
        XCTAssertEqual(r.ranks, 2)
        XCTAssertEqual(r.hosts, hosts, "one simulated host per rank, by name")
        XCTAssertEqual(r.perRank.map(\.host), hosts)
        XCTAssertGreaterThan(r.buckets.count, 1, "several buckets: the overlapped path ran")

        // allreduce-bench across the two hosts, polled: one host per machine share of the CPU, per byte on the link.
        let fit = folder.appendingPathComponent("fit.json").path
        let bench = try cluster(["run", "2", "--rate", "1gbit", "--", "allreduce-bench"] + Launcher.tiny
                                + ["--iterations", "50", "--min-bytes", "65536", "--comm-wait", "polling", "--json", fit])
        XCTAssertEqual(bench.status, 0, bench.all)
        XCTAssertTrue(bench.stdout.contains("÷ the 2 host(s) on it"), bench.stdout)
        let record = try AllreduceBenchRecord.read(from: fit)
        XCTAssertEqual(Set(record.hosts), Set(hosts))
        XCTAssertEqual(record.commWait, .polling)
        XCTAssertGreaterThan(try XCTUnwrap(record.fit?.cost.hostCpuPerByte, bench.stdout), 0,
                             "moving bytes between the namespaces costs the machine CPU")

        // The same cluster, again: a 2-rank job must equal 1 rank on the global batch.
        let verify = try cluster(["run", "2", "--rate", "1gbit", "--down", "--", "verify"] + Launcher.tiny
                                 + ["--batch-size", "2", "--warmup", "0", "--steps", "2", "--threads", "1", "--bucket-mb", "0.1"])
        XCTAssertEqual(verify.status, 0, verify.all)
        XCTAssertTrue(verify.stdout.contains("PASS"), verify.all)
        XCTAssertTrue(verify.stdout.contains("replicas: identical"), verify.all)

        // --down left nothing behind.
        let status = try cluster(["status"], timeout: 30)
        XCTAssertEqual(status.status, 0, status.all)
        XCTAssertTrue(status.stdout.contains("cluster \(ClusterTests.clusterID): down"), status.all)
        let etcHosts = (try? String(contentsOfFile: "/etc/hosts", encoding: .utf8)) ?? ""
        XCTAssertFalse(etcHosts.contains("vgg-dp cluster.sh \(ClusterTests.clusterID)"), etcHosts)
    }

    /// 2 hosts × 2 ranks: host-shared within each host, the slices' owners
    /// allreduce across the two hosts over TCP. Verify must pass, every
    /// replica agree, and each host's link must carry about the gradient once.
    func testTwoHostsOfTwoRanksRunTheHierarchicalExchange() throws {
        try requireNamespaces()
        defer { _ = try? cluster(["down"], timeout: 60) }
        let folder = Launcher.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let report = folder.appendingPathComponent("h.json").path
        let afterReport = folder.appendingPathComponent("after.json").path
        let args = Launcher.tiny + ["--batch-size", "2", "--warmup", "0", "--threads", "1", "--no-peak-probe", "--steps", "4"]
        let train = try cluster(["run", "2", "--ranks-per-host", "2", "--rate", "1gbit", "--bytes", "--"] + args
                                + ["--exchange", "host-shared", "--report", report], timeout: 200)
        XCTAssertEqual(train.status, 0, train.all)
        XCTAssertTrue(train.stderr.contains("+ mpirun -n 4"), train.stderr)
        XCTAssertTrue(train.stdout.contains("ranks: 4 on 2 host(s)"), train.all)
        XCTAssertTrue(train.stdout.contains("across 2 hosts the owners of a slice allreduce it"), train.all)
        XCTAssertTrue(train.stdout.contains("bucket by bucket during backward"), "overlapped by default across hosts: \(train.all)")
        XCTAssertTrue(train.stdout.contains("(identical on all 4 rank(s))"), train.all)
        // After backward instead of during it: the same sums in the same order, the same weights.
        let after = try cluster(["run", "2", "--ranks-per-host", "2", "--rate", "1gbit", "--"] + args
                                + ["--exchange", "host-shared", "--no-overlap", "--report", afterReport], timeout: 200)
        XCTAssertEqual(after.status, 0, after.all)
        XCTAssertTrue(after.stdout.contains("exchange host-shared after backward"), after.all)
        XCTAssertNotNil(Launcher.checksum(after.stdout), after.all)
        XCTAssertEqual(Launcher.checksum(after.stdout), Launcher.checksum(train.stdout))
        // --comm-wait auto, applied by the binary: each "host" sees this machine's cores.
        let layout = RankLayout(hosts: 2, ranksPerHost: 2, threadsPerRank: 1, cores: ProcessInfo.processInfo.activeProcessorCount)
        func autoWait(overlapped: Bool) -> String {
            layout.communicationWait(.auto, exchange: .hostShared, overlapped: overlapped) == .polling
                ? "MPI_Iallreduce tested every 200 µs" : "blocking MPI_Allreduce"
        }
        XCTAssertEqual(try RunReport.read(from: afterReport).commWait, autoWait(overlapped: false))
        let r = try RunReport.read(from: report)
        XCTAssertEqual(r.exchange, .hostShared)
        XCTAssertEqual(r.perRank.map(\.host), [hosts[0], hosts[0], hosts[1], hosts[1]], "host by host")
        XCTAssertEqual(r.commWait, autoWait(overlapped: true))
        // Each rank hands its slice, about half the gradient, to the cross-host allreduce.
        let gradient = r.parameters * 4
        for rank in r.perRank {
            let sent = try XCTUnwrap(rank.exchangeBytesPerStep)
            XCTAssertGreaterThan(sent, gradient / 2 - gradient / 10, "\(rank.rank)")
            XCTAssertLessThan(sent, gradient / 2 + gradient / 10, "\(rank.rank)")
        }
        XCTAssertTrue(train.stdout.contains("cluster: bytes sent by each host during the job:"), train.all)

        let verify = try cluster(["run", "2", "--ranks-per-host", "2", "--rate", "1gbit", "--down", "--", "verify"]
                                 + Launcher.tiny + ["--batch-size", "2", "--warmup", "0", "--steps", "2", "--threads", "1",
                                                    "--exchange", "host-shared"], timeout: 200)
        XCTAssertEqual(verify.status, 0, verify.all)
        XCTAssertTrue(verify.stdout.contains("replicas: identical"), verify.all)
        XCTAssertTrue(verify.stdout.contains("PASS"), verify.all)
    }

    /// 2 hosts × 2 ranks with PowerSGD: host-shared within each host, and
    /// what crosses hosts compressed. The overlapped and the after-backward
    /// exchange give the same weights; a killed job resumes from its
    /// checkpoint to the same weights (every rank's memory and Q's restored);
    /// verify passes; each rank sends far less than its fp32 slice.
    func testTwoHostsOfTwoRanksCompressWhatCrossesHosts() throws {
        try requireNamespaces()
        defer { _ = try? cluster(["down"], timeout: 60) }
        let folder = Launcher.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let report = folder.appendingPathComponent("c.json").path, checkpoints = folder.appendingPathComponent("ck").path
        try FileManager.default.createDirectory(atPath: checkpoints, withIntermediateDirectories: true)
        let compress = ["--compression", "powersgd", "--powersgd-rank", "2", "--powersgd-min-size", "1000"]
        let common = Launcher.tiny + ["--batch-size", "2", "--warmup", "0", "--threads", "1", "--steps", "6"] + compress
        let args = common + ["--no-peak-probe"]
        let layout = ["run", "2", "--ranks-per-host", "2", "--rate", "1gbit", "--"]
        let train = try cluster(layout + args + ["--report", report], timeout: 200)
        XCTAssertEqual(train.status, 0, train.all)
        XCTAssertTrue(train.stdout.contains("across 2 hosts the owners of a slice exchange it through powersgd rank 2 min 1000"), train.all)
        XCTAssertTrue(train.stdout.contains("(identical on all 4 rank(s))"), train.all)
        let expected = try XCTUnwrap(Launcher.checksum(train.stdout), train.all)
        let after = try cluster(layout + args + ["--no-overlap"], timeout: 200)
        XCTAssertEqual(after.status, 0, after.all)
        XCTAssertEqual(Launcher.checksum(after.stdout), expected, "the same arithmetic during and after backward")

        let r = try RunReport.read(from: report)
        XCTAssertEqual(r.exchange, .hostShared)
        XCTAssertEqual(r.compression, "powersgd rank 2 min 1000")
        let ratio = try XCTUnwrap(r.compressionRatio)
        XCTAssertGreaterThan(ratio, 2, "fp32 bytes of the slices over the bytes sent")
        for rank in r.perRank {
            XCTAssertLessThan(try XCTUnwrap(rank.exchangeBytesPerStep), r.parameters * 4 / 2 / 2, "rank \(rank.rank)")
        }

        let killed = try cluster(layout + args + ["--checkpoint-dir", checkpoints, "--checkpoint-every", "2",
                                                  "--inject-fault", "kill:3:5"], timeout: 200)
        XCTAssertNotEqual(killed.status, 0, killed.all)
        let resumed = try cluster(layout + args + ["--checkpoint-dir", checkpoints, "--checkpoint-every", "2",
                                                   "--resume", checkpoints], timeout: 200)
        XCTAssertEqual(resumed.status, 0, resumed.all)
        XCTAssertTrue(resumed.stdout.contains("resumed from \(checkpoints) at step 4"), resumed.all)
        XCTAssertEqual(Launcher.checksum(resumed.stdout), expected, "bitwise the same weights after resume")
        let flat = try cluster(layout + args + ["--exchange", "allreduce", "--resume", checkpoints], timeout: 200)
        XCTAssertEqual(flat.status, 2, flat.all)
        XCTAssertTrue(flat.stderr.contains("compression powersgd rank 2 min 1000, host-shared across 2 hosts vs powersgd rank 2 min 1000"), flat.all)

        let verify = try cluster(["run", "2", "--ranks-per-host", "2", "--rate", "1gbit", "--down", "--", "verify"] + common,
                                 timeout: 200)
        XCTAssertEqual(verify.status, 0, verify.all)
        XCTAssertTrue(verify.stdout.contains("replicas: identical"), verify.all)
        XCTAssertTrue(verify.stdout.contains("PASS"), verify.all)
    }

    func testBadArgumentsGetOneMessageAndStatus2() throws {
        // No namespaces needed: cluster.sh refuses before touching anything.
        for (args, expected) in [(["up", "0"], "N must be a positive integer"),
                                 (["up", "2", "--rate", "fast"], "--rate: 'fast' is not a rate"),
                                 (["run", "2", "--bogus"], "unknown option '--bogus'"),
                                 (["frobnicate"], "unknown command 'frobnicate'")] {
            let r = try cluster(args, timeout: 30)
            XCTAssertEqual(r.status, 2, "\(args): \(r.all)")
            XCTAssertTrue(r.stderr.contains(expected), "\(args): \(r.stderr)")
            XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, "\(args): one message: \(r.stderr)")
        }
    }
}
