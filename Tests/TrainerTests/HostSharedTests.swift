import Foundation
import Reports
import TestSupport
@testable import Trainer
import VGGEngine
import Vocabulary
import XCTest

/// One replica per host (`--exchange host-shared`), for real under mpirun on
/// one host, and its pieces in process.
final class HostSharedTests: XCTestCase {
    let tiny = Launcher.tiny + ["--no-peak-probe", "--threads", "1"]

    func checksum(_ text: String) -> String? { Launcher.checksum(text) }

    /// Entries of /dev/shm that Open MPI's shared memory would leave.
    func sharedMemoryEntries() -> Set<String> {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: "/dev/shm")) ?? []
        return Set(names.filter { $0.contains("osc") || $0.contains("vader") || $0.contains("sm_segment") || $0.contains("vgg") })
    }

    func testTwoRanksGiveTheAllreduceWeightsBitwise() throws {
        // Two addends: a + b is the same sum in any order, so both exchanges must agree to the bit.
        let args = tiny + ["--batch-size", "2", "--warmup", "1", "--steps", "4", "--bucket-mb", "0.05"]
        let a = try Launcher.run(args + ["--exchange", "allreduce"], ranks: 2)
        let h = try Launcher.run(args + ["--exchange", "host-shared"], ranks: 2)
        XCTAssertEqual(a.status, 0, a.all)
        XCTAssertEqual(h.status, 0, h.all)
        XCTAssertTrue(h.stdout.contains("exchange host-shared after backward: one replica per host, 2 ranks per host"), h.all)
        XCTAssertTrue(a.stdout.contains("after backward, gradients sent as fp32"), a.all)
        XCTAssertNotNil(checksum(a.stdout), a.all)
        XCTAssertEqual(checksum(h.stdout), checksum(a.stdout))
    }

    func testAutoChoosesHostSharedOnOneHostAndOverlapAsksForAllreduce() throws {
        let args = tiny + ["--batch-size", "1", "--warmup", "0", "--steps", "2"]
        let auto = try Launcher.run(args, ranks: 2)
        XCTAssertEqual(auto.status, 0, auto.all)
        XCTAssertTrue(auto.stdout.contains("exchange host-shared"), auto.all)
        let overlap = try Launcher.run(args + ["--overlap"], ranks: 2)
        XCTAssertEqual(overlap.status, 0, overlap.all)
        XCTAssertTrue(overlap.stdout.contains("overlapped with backward"), overlap.all)
        let both = try Launcher.run(args + ["--overlap", "--exchange", "host-shared"], ranks: 2)
        XCTAssertEqual(both.status, 2, both.all)
        XCTAssertTrue(both.stderr.contains("this job runs on one host, where host-shared exchanges after backward"), both.all)
        let one = try Launcher.run(args + ["--exchange", "host-shared"])
        XCTAssertEqual(one.status, 0, "one rank is a group of one: nothing to share: \(one.all)")
    }

    func testVerifyPassesOnThreeAndFourRanks() throws {
        for ranks in [3, 4] {
            let r = try Launcher.run(["verify"] + Launcher.tiny + ["--threads", "1", "--batch-size", "2", "--warmup", "0",
                                                                   "--steps", "3", "--exchange", "host-shared"], ranks: ranks)
            XCTAssertEqual(r.status, 0, r.all)
            XCTAssertTrue(r.stdout.contains("replicas: identical"), r.all)
            XCTAssertTrue(r.stdout.contains("PASS"), r.all)
        }
    }

    func testNothingIsLeftInDevShmAfterAnEndAnErrorOrAKilledRank() throws {
        let before = sharedMemoryEntries()
        let args = tiny + ["--batch-size", "1", "--warmup", "0", "--exchange", "host-shared"]
        let normal = try Launcher.run(args + ["--steps", "3"], ranks: 3)
        XCTAssertEqual(normal.status, 0, normal.all)
        let error = try Launcher.run(args + ["--steps", "5", "--inject-fault", "nan:2:2"], ranks: 3)
        XCTAssertEqual(error.status, 1, error.all)
        XCTAssertTrue(error.stderr.contains("non-finite gradient (NaN or Inf) at step 2 in layer fc8"), error.all)
        let killed = try Launcher.run(args + ["--steps", "1000", "--inject-fault", "kill:1:3"], ranks: 3, timeout: 60)
        XCTAssertNotEqual(killed.status, 0)
        XCTAssertNotEqual(killed.status, 124, "the job hung until the test's time limit")
        usleep(500_000)
        XCTAssertEqual(sharedMemoryEntries().subtracting(before), [], "segments left in /dev/shm")
    }

    func testSlicesCoverTheArenaAndKeepBucketsWholeWhereTheyCan() {
        let spec = NetworkSpec(model: .vgg16)
        let plan = BucketPlan(spec: spec, bucketMB: 25)
        for parts in 1...4 {
            let s = HostReplica.partition(count: spec.parameterCount, buckets: plan.buckets, parts: parts)
            XCTAssertEqual(s.count, parts)
            XCTAssertEqual(s.first?.offset, 0)
            XCTAssertEqual(s.last?.end, spec.parameterCount)
            for k in 1..<parts { XCTAssertEqual(s[k].offset, s[k - 1].end, "contiguous") }
            let even = spec.parameterCount / parts
            XCTAssertTrue(s.allSatisfy { abs($0.count - even) <= even / 10 + 16 }, "\(parts): \(s.map(\.count))")
        }
        // A boundary near a bucket edge moves onto it.
        let buckets = [Bucket(index: 0, layers: [1], offset: 480, count: 520), Bucket(index: 1, layers: [0], offset: 0, count: 480)]
        XCTAssertEqual(HostReplica.partition(count: 1000, buckets: buckets, parts: 2).map(\.count), [480, 520])
        // One far from any edge falls on a multiple of 16 floats.
        let one = [Bucket(index: 0, layers: [0], offset: 0, count: 1000)]
        XCTAssertEqual(HostReplica.partition(count: 1000, buckets: one, parts: 3).map(\.offset), [0, 320, 656])
    }

    func testFusedSumAndUpdateIsTheSumThenTheUpdate() {
        let n = 1003
        for ranks in 1...5 {
            let grads = (0..<ranks).map { r -> UnsafeMutablePointer<Float> in
                let g = UnsafeMutablePointer<Float>.allocate(capacity: n)
                for i in 0..<n { g[i] = Float(sin(Double(i * (r + 3)))) }
                return g
            }
            defer { grads.forEach { $0.deallocate() } }
            let w1 = FloatArena(count: n), v1 = FloatArena(count: n), w2 = FloatArena(count: n), v2 = FloatArena(count: n)
            let sum = FloatArena(count: n)
            for i in 0..<n { w1[i] = Float(i) / 100; w2[i] = w1[i]; v1[i] = 0.5; v2[i] = 0.5 }
            let sgd = SGD(), range = ArenaSlice(offset: 7, count: n - 20), scale = 1 / Float(ranks)
            XCTAssertTrue(sgd.stepSumming(grads, parameters: w1.base, velocity: v1.base, range: range, gradientScale: scale))
            SGD.sum(grads, into: sum.base, range: range)
            for i in range.offset..<range.end {
                var s = grads[0][i]
                for r in 1..<ranks { s += grads[r][i] }
                XCTAssertEqual(sum[i], s, "sum in rank order")
            }
            sgd.step(parameters: w2, gradients: sum, velocity: v2, slice: range, gradientScale: scale)
            XCTAssertEqual(w1.toArray(), w2.toArray(), "\(ranks) ranks")
            XCTAssertEqual(v1.toArray(), v2.toArray(), "\(ranks) ranks")
            grads[ranks - 1][500] = .infinity
            XCTAssertFalse(sgd.stepSumming(grads, parameters: w1.base, velocity: v1.base, range: range, gradientScale: scale))
            grads[ranks - 1][500] = .nan
            XCTAssertFalse(sgd.stepSumming(grads, parameters: w1.base, velocity: v1.base, range: range, gradientScale: scale))
        }
    }
}
