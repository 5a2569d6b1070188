import Foundation
@testable import Reports
import TestSupport
import Vocabulary
import XCTest

/// The α-β fit and the step-time model, on small cases computed by hand.
final class ScalingModelTests: XCTestCase {
    // MARK: - Ring cost

    func testRingCostFormula() {
        let c = LinkCost(alpha: 1e-5, beta: 1e-9)
        XCTAssertEqual(c.allreduceSeconds(bytes: 1e6, ranks: 1), 0, "one rank exchanges nothing")
        // N = 2: 2·1·α + 2·(1/2)·bytes·β = 2e-5 + 1e-3
        XCTAssertEqual(c.allreduceSeconds(bytes: 1e6, ranks: 2), 2e-5 + 1e-3, accuracy: 1e-15)
        // N = 4: 6α + 1.5·bytes·β = 6e-5 + 1.5e-3
        XCTAssertEqual(c.allreduceSeconds(bytes: 1e6, ranks: 4), 6e-5 + 1.5e-3, accuracy: 1e-15)
        XCTAssertEqual(c.bandwidthGBps, 1, accuracy: 1e-12)
        // 10 Gbit/s is 1.25 GB/s: β = 0.8 ns/byte.
        let link = LinkCost(bitsPerSecond: 10e9, latency: 5e-6)
        XCTAssertEqual(link.beta, 0.8e-9, accuracy: 1e-21)
        XCTAssertEqual(link.alpha, 5e-6)
    }

    // MARK: - Fit

    func testFitRecoversAlphaAndBetaFromExactTimes() throws {
        let truth = LinkCost(alpha: 40e-6, beta: 1 / 0.5e9)
        let sizes: [Double] = [4, 64, 4096, 65536, 1_048_576, 16_777_216]
        for ranks in [2, 3, 8] {
            let times = sizes.map { truth.allreduceSeconds(bytes: $0, ranks: ranks) }
            for weighting in CostFit.Weighting.allCases {
                let f = try CostFit.fit(ranks: ranks, bytes: sizes, seconds: times, weighting: weighting)
                XCTAssertEqual(f.cost.alpha, truth.alpha, accuracy: 1e-6 * truth.alpha, "\(ranks) ranks, \(weighting)")
                XCTAssertEqual(f.cost.beta, truth.beta, accuracy: 1e-6 * truth.beta, "\(ranks) ranks, \(weighting)")
                XCTAssertEqual(f.rSquared, 1, accuracy: 1e-9)
                XCTAssertLessThan(f.maxRelativeError, 1e-6)
                XCTAssertFalse(f.constrained)
                XCTAssertEqual(f.points, sizes.count)
                XCTAssertEqual(f.predict(bytes: 1e6), truth.allreduceSeconds(bytes: 1e6, ranks: ranks), accuracy: 1e-12)
            }
        }
    }

    func testFitIsLeastSquaresOnTwoNoisyPoints() throws {
        // Three points (bytes, seconds) on N = 2: (0, 1), (10, 2), (20, 5).
        // Absolute least squares: slope = Σ(x−x̄)(y−ȳ)/Σ(x−x̄)² = (−10·−1.667 + 0 + 10·2.333)/200 = 0.2,
        // intercept = ȳ − 0.2·x̄ = 2.6667 − 2 = 0.6667; α = c₀/2, β = c₁/1.
        let f = try CostFit.fit(ranks: 2, bytes: [0, 10, 20], seconds: [1, 2, 5], weighting: .absolute)
        XCTAssertEqual(f.cost.alpha, 0.66667 / 2, accuracy: 1e-4)
        XCTAssertEqual(f.cost.beta, 0.2, accuracy: 1e-12)
        // Residuals 1/3, −2/3, 1/3 → SSE 2/3; total Σ(y−ȳ)² = 8.6667 → R² = 1 − 0.6667/8.6667.
        let r2: Double = 1 - (2.0 / 3.0) / (26.0 / 3.0)
        XCTAssertEqual(f.rSquared, r2, accuracy: 1e-9)
        // Relative weighting pulls the line towards the small times.
        let r = try CostFit.fit(ranks: 2, bytes: [0, 10, 20], seconds: [1, 2, 5], weighting: .relative)
        XCTAssertLessThan(abs(r.predict(bytes: 0) - 1), abs(f.predict(bytes: 0) - 1))
    }

    func testFitHoldsANegativeCoefficientAtZero() throws {
        // Times that fall with size would give β < 0: β is held at 0, α = mean / (2(N−1)).
        let f = try CostFit.fit(ranks: 2, bytes: [100, 200], seconds: [3, 1], weighting: .absolute)
        XCTAssertTrue(f.constrained)
        XCTAssertEqual(f.cost.beta, 0)
        XCTAssertEqual(f.cost.alpha, 2.0 / 2, accuracy: 1e-12)
        // A line through the origin steeper than the data would give α < 0: α = 0, β from Σxy/Σx².
        let g = try CostFit.fit(ranks: 2, bytes: [10, 20], seconds: [1, 3], weighting: .absolute)
        XCTAssertTrue(g.constrained)
        XCTAssertEqual(g.cost.alpha, 0)
        let expected: Double = 70.0 / 500.0 // Σxy / Σx² = (10·1 + 20·3) / (10² + 20²)
        XCTAssertEqual(g.cost.beta, expected, accuracy: 1e-12)
    }

    func testFitRefusesWhatItCannotFit() {
        XCTAssertThrowsError(try CostFit.fit(ranks: 1, bytes: [1, 2], seconds: [1, 2])) { e in
            XCTAssertTrue("\(e)".contains("at least 2 ranks"), "\(e)")
        }
        XCTAssertThrowsError(try CostFit.fit(ranks: 2, bytes: [8, 8], seconds: [1, 2])) { e in
            XCTAssertTrue("\(e)".contains("two different sizes"), "\(e)")
        }
        XCTAssertThrowsError(try CostFit.fit(ranks: 2, bytes: [1, 2], seconds: [1]))
        XCTAssertThrowsError(try CostFit.fit(ranks: 2, bytes: [1, 2], seconds: [0, 1]))
    }

    /// Writes `record` to `path` and reads it back.
    func roundTrip(_ record: AllreduceBenchRecord, at path: String) throws -> AllreduceBenchRecord {
        try record.write(to: path)
        return try AllreduceBenchRecord.read(from: path)
    }

    func testBenchRecordRoundTripsThroughJSON() throws {
        let truth = LinkCost(alpha: 20e-6, beta: 1e-9)
        let sizes: [Int] = [1024, 1 << 20, 8 << 20]
        let rows = sizes.map { (b: Int) -> AllreduceResult in
            let t = truth.allreduceSeconds(bytes: Double(b), ranks: 4)
            return AllreduceResult(bytes: b, count: b / 4, iterations: 3, seconds: t,
                                   algbwGBps: Double(b) / t / 1e9, busbwGBps: Double(b) / t / 1e9 * 1.5)
        }
        let fit = try AllreduceBenchRecord.fit(ranks: 4, hosts: 4, rows: rows, weighting: .relative)
        XCTAssertNil(fit.cost.hostCpuPerByte, "rows without their CPU time give no host CPU")
        let record = AllreduceBenchRecord(startedAt: "2026-01-01T00:00:00Z", ranks: 4, hosts: ["a", "b", "c", "d"],
                                          mpiLibrary: "test", model: "vgg16", imageSize: 64, widthDivisor: 4, classes: 1000,
                                          gradientBytes: 8 << 20, bucketMb: 25, rows: rows, wholeGradient: rows[2],
                                          bucketed: rows[2], fit: fit)
        let folder = Launcher.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("bench.json").path
        let back = try roundTrip(record, at: path)
        XCTAssertEqual(back.fit, fit)
        XCTAssertEqual(back.rows.map(\.bytes), [1024, 1 << 20, 8 << 20])
        XCTAssertEqual(back.hosts, ["a", "b", "c", "d"])
        XCTAssertEqual(try XCTUnwrap(back.fit).cost.alpha, 20e-6, accuracy: 1e-12)
    }

    func testHostCPUPerByteIsTheRowsCPUOverTheBytesEachHostsLinkCarried() throws {
        // A ring over 4 ranks, host by host: each host's one outgoing edge carries 2·(3/4) of every allreduced byte.
        let rows = [(1000, 0.003), (3000, 0.009)].map { (b: Int, cpu: Double) in
            AllreduceResult(bytes: b, count: b / 4, iterations: 1, seconds: Double(b) * 1e-6, algbwGBps: 1, busbwGBps: 1.5,
                            hostCpuSeconds: cpu)
        }
        let gamma = try XCTUnwrap(CostFit.hostCpuPerByte(ranks: 4, hosts: 2, rows: rows))
        XCTAssertEqual(gamma, 0.012 / (1.5 * 4000), accuracy: 1e-15)
        XCTAssertEqual(try AllreduceBenchRecord.fit(ranks: 4, hosts: 2, rows: rows, weighting: .relative).cost.hostCpuPerByte, gamma)
        XCTAssertNil(CostFit.hostCpuPerByte(ranks: 4, hosts: 1, rows: rows), "on one host there is no link to charge")
        var partial = rows
        partial[1].hostCpuSeconds = nil
        XCTAssertNil(CostFit.hostCpuPerByte(ranks: 4, hosts: 2, rows: partial), "a row without its CPU time gives none")

        // Files written before the CPU was measured read back without it.
        let record = AllreduceBenchRecord(startedAt: "2026-01-01T00:00:00Z", ranks: 4, hosts: ["a", "a", "b", "b"],
                                          mpiLibrary: "test", model: "vgg16", imageSize: 64, widthDivisor: 4, classes: 1000,
                                          gradientBytes: 3000, bucketMb: 25, commWait: .polling, rows: rows,
                                          wholeGradient: rows[1], bucketed: rows[1],
                                          fit: try AllreduceBenchRecord.fit(ranks: 4, hosts: 2, rows: rows, weighting: .relative))
        let folder = Launcher.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("bench.json").path
        let back = try roundTrip(record, at: path)
        XCTAssertEqual(back.commWait, .polling)
        XCTAssertEqual(try XCTUnwrap(back.fit?.cost.hostCpuPerByte), gamma, accuracy: 1e-18)
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let old = text.split(separator: "\n").filter { !$0.contains("host_cpu") && !$0.contains("comm_wait") }.joined(separator: "\n")
        XCTAssertNotEqual(old, text)
        try old.write(toFile: path, atomically: true, encoding: .utf8)
        let older = try AllreduceBenchRecord.read(from: path)
        XCTAssertNil(older.commWait)
        XCTAssertNil(older.fit?.cost.hostCpuPerByte)
        XCTAssertTrue(older.rows.allSatisfy { $0.hostCpuSeconds == nil })
    }

    // MARK: - Units

    func testUnits() throws {
        XCTAssertEqual(try Units.bitsPerSecond("25gbit"), 25e9)
        XCTAssertEqual(try Units.bitsPerSecond("10Gbit"), 10e9)
        XCTAssertEqual(try Units.bitsPerSecond("500mbit"), 500e6)
        XCTAssertEqual(try Units.bitsPerSecond("1.5gbit/s"), 1.5e9)
        XCTAssertEqual(try Units.seconds("5us"), 5e-6, accuracy: 1e-18)
        XCTAssertEqual(try Units.seconds("5µs"), 5e-6, accuracy: 1e-18)
        XCTAssertEqual(try Units.seconds("1.5ms"), 1.5e-3, accuracy: 1e-15)
        XCTAssertEqual(try Units.seconds("0"), 0)
        for bad in ["fast", "10", "10gbps", "-1gbit", "0gbit", "1.2.3gbit"] {
            XCTAssertThrowsError(try Units.bitsPerSecond(bad), bad)
        }
        for bad in ["5", "soon", "5 years", "-5us"] {
            XCTAssertThrowsError(try Units.seconds(bad), bad)
        }
    }

    // MARK: - Step model

    /// Three layers (forward order) with backward times 4, 2, 3 s: backward runs
    /// layer 2 (ready at 3), layer 1 (at 5), layer 0 (at 9).
    func profile(buckets: [Bucket], optimizer: Double = 0.8, overlap: Bool = true) -> ComputeProfile {
        ComputeProfile(batchPerRank: 2, data: 0.5, forward: 1.5, layerBackward: [4, 2, 3], optimizer: optimizer,
                       buckets: buckets, overlap: overlap)
    }

    /// Plans over those three layers, sizes in floats (4 bytes each): all three
    /// layers in one bucket of 6 floats; or A = layers 2, 1 (6 floats, lowest
    /// layer 1) and B = layer 0 (2 floats).
    let oneBucket = [Bucket(index: 0, layers: [2, 1, 0], offset: 0, count: 6)]
    let twoBuckets = [Bucket(index: 0, layers: [2, 1], offset: 2, count: 6), Bucket(index: 1, layers: [0], offset: 0, count: 2)]

    /// α = 0, β = 1/4 s/byte: on 2 ranks a bucket of n floats takes n seconds.
    let slow = LinkCost(alpha: 0, beta: 0.25)

    func testOneBucketStartsAfterBackwardAndIsAllExposed() {
        let p = profile(buckets: oneBucket)
        let s = ScalingModel.step(profile: p, cost: slow, ranks: 2, batchPerRank: 2)
        XCTAssertEqual(s.backward, 9)
        XCTAssertEqual(s.buckets, [BucketTiming(ready: 9, start: 9, end: 15)])
        XCTAssertEqual(s.allreduce, 6)
        XCTAssertEqual(s.exposed, 6)
        // data 0.5 + forward 1.5 + backward 9 + wait 6 + optimizer 0.8
        XCTAssertEqual(s.step, 17.8, accuracy: 1e-12)
        XCTAssertEqual(s.optimizerPhase, 6.8, accuracy: 1e-12)
        XCTAssertEqual(s.imagesPerSecond, 4 / 17.8, accuracy: 1e-12)
    }

    func testTwoBucketsOverlapBackwardAndQueueOnOneThread() {
        // Bucket A = layers 2, 1 (lowest 1): ready at 5, 6 floats → runs 5..11.
        // Bucket B = layer 0: ready at 9, but the thread is busy until 11 → runs 11..13.
        // After backward (9): wait for A until 11 (2 s), its update 0.8·6/8 = 0.6 → 11.6;
        // wait for B until 13 (1.4 s), its update 0.2 → 13.2.
        let p = profile(buckets: twoBuckets)
        let s = ScalingModel.step(profile: p, cost: slow, ranks: 2, batchPerRank: 2)
        XCTAssertEqual(s.buckets, [BucketTiming(ready: 5, start: 5, end: 11), BucketTiming(ready: 9, start: 11, end: 13)])
        XCTAssertEqual(s.allreduce, 8, accuracy: 1e-12)
        XCTAssertEqual(s.exposed, 3.4, accuracy: 1e-12)
        XCTAssertEqual(s.step, 0.5 + 1.5 + 13.2, accuracy: 1e-12)
    }

    func testHiddenCommunicationCostsNothing() {
        // A fast link: A runs 5..5.6, hidden behind backward; B runs 9..9.2 and
        // only its 0.2 s shows (no optimizer time here to cover it).
        let p = profile(buckets: twoBuckets, optimizer: 0)
        let fast = LinkCost(alpha: 0, beta: 0.025)
        let s = ScalingModel.step(profile: p, cost: fast, ranks: 2, batchPerRank: 2)
        XCTAssertEqual(s.buckets[0].end, 5.6, accuracy: 1e-12)
        XCTAssertEqual(s.buckets[1].start, 9, accuracy: 1e-12)
        XCTAssertEqual(s.exposed, 0.2, accuracy: 1e-12)
        XCTAssertEqual(s.step, 2 + 9 + 0.2, accuracy: 1e-12)
        // With the optimizer's 0.6 s on bucket A running first, B's 0.2 s is hidden too.
        let q = profile(buckets: twoBuckets)
        let hidden = ScalingModel.step(profile: q, cost: fast, ranks: 2, batchPerRank: 2)
        XCTAssertEqual(hidden.exposed, 0)
        XCTAssertEqual(hidden.step, ScalingModel.step(profile: q, cost: fast, ranks: 1, batchPerRank: 2).step, accuracy: 1e-12)
        // One rank: no communication at all, step = the profile's compute.
        let one = ScalingModel.step(profile: q, cost: slow, ranks: 1, batchPerRank: 2)
        XCTAssertEqual(one.exposed, 0)
        XCTAssertEqual(one.allreduce, 0)
        XCTAssertTrue(one.buckets.isEmpty)
        XCTAssertEqual(one.step, 0.5 + 1.5 + 9 + 0.8, accuracy: 1e-12)
    }

    func testWithoutOverlapEveryBucketWaitsForBackwardAndTheUpdateBefore() {
        // Compute thread: 9 + A 6 → 15 + update 0.6 → 15.6 + B 2 → 17.6 + 0.2 → 17.8.
        let p = profile(buckets: twoBuckets, overlap: false)
        let s = ScalingModel.step(profile: p, cost: slow, ranks: 2, batchPerRank: 2)
        XCTAssertEqual(s.buckets[0].start, 9, accuracy: 1e-12)
        XCTAssertEqual(s.buckets[1].start, 15.6, accuracy: 1e-12)
        XCTAssertEqual(s.exposed, 8, accuracy: 1e-12)
        XCTAssertEqual(s.step, 2 + 17.8, accuracy: 1e-12)
    }

    func testLatencyTermGrowsWithRanks() {
        // α only: a bucket costs 2(N−1)α whatever its size.
        let p = profile(buckets: oneBucket, optimizer: 0)
        let latency = LinkCost(alpha: 0.5, beta: 0)
        XCTAssertEqual(ScalingModel.step(profile: p, cost: latency, ranks: 2, batchPerRank: 2).exposed, 1, accuracy: 1e-12)
        XCTAssertEqual(ScalingModel.step(profile: p, cost: latency, ranks: 5, batchPerRank: 2).exposed, 4, accuracy: 1e-12)
    }

    func testBatchAndComputeScaleScaleComputeButNotTheOptimizer() {
        let p = profile(buckets: oneBucket)
        let s = ScalingModel.step(profile: p, cost: slow, ranks: 1, batchPerRank: 4, computeScale: 0.5)
        // Batch ×2 and scale ×0.5: data, forward, backward as profiled; optimizer × 0.5.
        XCTAssertEqual(s.data, 0.5, accuracy: 1e-12)
        XCTAssertEqual(s.forward, 1.5, accuracy: 1e-12)
        XCTAssertEqual(s.backward, 9, accuracy: 1e-12)
        XCTAssertEqual(s.update, 0.4, accuracy: 1e-12)
        XCTAssertEqual(s.step, 11.4, accuracy: 1e-12)
    }

    func testStrongAndWeakScaling() throws {
        let p = profile(buckets: oneBucket, optimizer: 0)
        let free = LinkCost(alpha: 0, beta: 0)
        // Weak: the same work per rank, free communication → flat step, efficiency 1, N× images/s.
        let weak = try ScalingModel.study(profile: p, cost: free, kind: .weak, batch: 2, ranks: [1, 2, 4])
        XCTAssertEqual(weak.rows.map(\.step), [11, 11, 11])
        XCTAssertEqual(weak.rows.map(\.globalBatch), [2, 4, 8])
        XCTAssertEqual(weak.rows.map { weak.efficiency($0) }, [1, 1, 1])
        XCTAssertEqual(weak.speedup(weak.rows[2]), 4, accuracy: 1e-12)
        // Strong, global batch 4: per-rank batch 4, 2, 1 → compute 22, 11, 5.5; 3 does not divide 4.
        let strong = try ScalingModel.study(profile: p, cost: free, kind: .strong, batch: 4, ranks: [4, 1, 3, 2])
        XCTAssertEqual(strong.rows.map(\.ranks), [1, 2, 4])
        XCTAssertEqual(strong.rows.map(\.batchPerRank), [4, 2, 1])
        XCTAssertEqual(strong.skipped, [3])
        XCTAssertEqual(strong.rows.map(\.step), [22, 11, 5.5])
        XCTAssertEqual(strong.rows.map { strong.efficiency($0) }, [1, 1, 1])
        // With a slow link the strong efficiency is T₁/(N·T_N): 22 / (2·(11 + 6)).
        let slowStrong = try ScalingModel.study(profile: p, cost: slow, kind: .strong, batch: 4, ranks: [1, 2])
        XCTAssertEqual(slowStrong.efficiency(slowStrong.rows[1]), 22 / (2 * 17), accuracy: 1e-12)
        // and the weak one T₁/T_N: 11 / 17.
        let slowWeak = try ScalingModel.study(profile: p, cost: slow, kind: .weak, batch: 2, ranks: [1, 2])
        XCTAssertEqual(slowWeak.efficiency(slowWeak.rows[1]), 11.0 / 17, accuracy: 1e-12)
        XCTAssertThrowsError(try ScalingModel.study(profile: p, cost: free, kind: .strong, batch: 3, ranks: [2, 4]))
        XCTAssertThrowsError(try ScalingModel.study(profile: p, cost: free, kind: .weak, batch: 2, ranks: [0]))
        XCTAssertThrowsError(try ScalingModel.study(profile: p, cost: free, kind: .weak, batch: 2, ranks: [1], computeScale: 0))
    }

    func testProfileFromMeasurementsFindsLowestLayersAndScalesToThePhase() throws {
        // Layer times 1, 0.5, 2, 0.5 sum to 4; the backward phase took 5 → each × 1.25.
        // The plan: fc2 and fc1 (200 floats, lowest layer 2), then conv1 (50 floats).
        let p = try ComputeProfile.measured(
            batchPerRank: 8, data: 0.1, forward: 2, backwardPhase: 5, optimizer: 0.3,
            layerBackward: [1, 0.5, 2, 0.5],
            buckets: [Bucket(index: 0, layers: [3, 2], offset: 50, count: 200), Bucket(index: 1, layers: [0], offset: 0, count: 50)],
            overlap: true)
        XCTAssertEqual(p.layerBackward, [1.25, 0.625, 2.5, 0.625])
        XCTAssertEqual(p.buckets.map(\.bytes), [800, 200])
        XCTAssertEqual(p.buckets.map(\.lowestLayer), [2, 0])
        XCTAssertEqual(p.gradientBytes, 1000)
        // Bucket 0 is ready after fc2 and fc1: 0.625 + 2.5.
        let s = ScalingModel.step(profile: p, cost: LinkCost(alpha: 0, beta: 0), ranks: 2, batchPerRank: 8)
        XCTAssertEqual(s.buckets[0].ready, 3.125, accuracy: 1e-12)
        XCTAssertEqual(s.buckets[1].ready, 5, accuracy: 1e-12)
        // A bucket naming a layer the profile does not have (by name: RunReportCodingTests).
        XCTAssertThrowsError(try ComputeProfile.measured(
            batchPerRank: 8, data: 0, forward: 1, backwardPhase: 1, optimizer: 0, layerBackward: [1],
            buckets: [Bucket(index: 0, layers: [1], offset: 0, count: 1)], overlap: true)) { e in
            XCTAssertTrue("\(e)".contains("names layer 1 of 1"), "\(e)")
        }
    }

    func testCSVHasTheColumnsPlotPyReads() throws {
        let p = profile(buckets: twoBuckets)
        let study = try ScalingModel.study(profile: p, cost: slow, kind: .weak, batch: 2, ranks: [1, 2, 4])
        let lines = study.csv(model: "vgg16", imageSize: 64, mode: "train (model)", blasThreads: 1, file: "p.json")
            .split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.count, 4)
        let header = lines[0].split(separator: ",").map(String.init)
        XCTAssertEqual(header, ScalingStudy.scalingColumns)
        for needed in ["ranks", "images_per_second", "efficiency", "step_mean_s", "data_s", "forward_s", "backward_s",
                       "optimizer_s", "exposed_s"] {
            XCTAssertTrue(header.contains(needed), needed)
        }
        let row = Dictionary(uniqueKeysWithValues: zip(header, lines[2].split(separator: ",").map(String.init)))
        let two = study.rows[1]
        XCTAssertEqual(row["ranks"], "2")
        XCTAssertEqual(Double(row["step_mean_s"] ?? ""), two.step)
        // optimizer_s holds the waits, as the trainer measures it (plot.py splits exposed off it).
        XCTAssertEqual(Double(row["optimizer_s"] ?? ""), two.update + two.exposed)
        XCTAssertEqual(row["mode"], "train (model)")
        XCTAssertEqual(study.markdownTable().count, 2 + 3)
    }

    // MARK: - Layouts: what the trainer would run

    func testOnOneSaturatedHostTheAllreduceRunsAfterBackwardAsTheTrainerDoes() {
        let p = profile(buckets: twoBuckets)
        let saturated = ModelLayout(ranksPerHost: 2, threadsPerRank: 1, cores: 2, exchange: .allreduce)
        let s = ScalingModel.step(profile: p, cost: slow, ranks: 2, batchPerRank: 2, layout: saturated)
        XCTAssertFalse(s.overlap)
        // As without overlap: 9 + A 6 + 0.6 + B 2 + 0.2 after data and forward.
        XCTAssertEqual(s.step, 2 + 17.8, accuracy: 1e-12)
        XCTAssertEqual(s.exposed, 8, accuracy: 1e-12)
        var spare = saturated
        spare.cores = 4
        let o = ScalingModel.step(profile: p, cost: slow, ranks: 2, batchPerRank: 2, layout: spare)
        XCTAssertTrue(o.overlap, "a core is idle for the communication thread")
        XCTAssertEqual(o.step, 2 + 13.2, accuracy: 1e-12)
        spare.overlap = false
        XCTAssertEqual(ScalingModel.step(profile: p, cost: slow, ranks: 2, batchPerRank: 2, layout: spare).step, 2 + 17.8,
                       accuracy: 1e-12, "--no-overlap as given")
    }

    func testThreadsBeyondTheCoresShareThemAndSoDoesTheOneHostAllreduce() {
        // 4 ranks on 2 cores: every compute time × 2 (backward 18, data 1, forward 3, optimizer 1.6);
        // ring over 4 ranks: 2·(3/4)·bytes·β = 0.375 s/byte, × 2 on one host: A 18 s, B 6 s; no overlap.
        // 18 + 18 → 36 + 1.2 (A's update) → 37.2 + 6 → 43.2 + 0.4 → 43.6.
        let p = profile(buckets: twoBuckets)
        let layout = ModelLayout(ranksPerHost: 4, threadsPerRank: 1, cores: 2, exchange: .allreduce)
        let s = ScalingModel.step(profile: p, cost: slow, ranks: 4, batchPerRank: 2, layout: layout)
        XCTAssertEqual(s.backward, 18, accuracy: 1e-12)
        XCTAssertEqual(s.allreduce, 24, accuracy: 1e-12)
        XCTAssertEqual(s.step, 1 + 3 + 43.6, accuracy: 1e-12)
    }

    func testACoRunProfileGivesTheComputeOfHostsAtItsLoad() {
        // Measured with 4 copies on 2 cores: backward 11 (not 2 × 9), data 0.6, forward 1.8, optimizer 1.
        // The base plan is kept; the allreduce's copies still share the cores (× 2): A 18 s, B 6 s.
        // 11 + 18 → 29 + 0.75 (A's update) → 29.75 + 6 → 35.75 + 0.25 → 36, after data and forward.
        let p = profile(buckets: twoBuckets)
        let measured = ComputeProfile(batchPerRank: 2, data: 0.6, forward: 1.8, layerBackward: [5, 2.5, 3.5], optimizer: 1,
                                      buckets: oneBucket, overlap: false)
        let four = CoRunProfile(compute: measured, copies: 4, cores: 2, threadsPerRank: 1)
        let pair = CoRunProfile(compute: measured, copies: 2, cores: 2, threadsPerRank: 1)
        let layout = ModelLayout(ranksPerHost: 4, threadsPerRank: 1, cores: 2, exchange: .allreduce, coRuns: [pair, four])
        let s = ScalingModel.step(profile: p, cost: slow, ranks: 4, batchPerRank: 2, layout: layout)
        XCTAssertEqual(s.coRunCopies, 4, "4 ranks on 2 cores: 2 threads per core, as when the 4 copies ran")
        XCTAssertEqual(s.backward, 11, accuracy: 1e-12)
        XCTAssertEqual(s.buckets.count, 2, "the profile's bucket plan")
        XCTAssertEqual(s.allreduce, 24, accuracy: 1e-12)
        XCTAssertEqual(s.step, 0.6 + 1.8 + 36, accuracy: 1e-12)
        let one = ScalingModel.step(profile: p, cost: slow, ranks: 1, batchPerRank: 2, layout: layout)
        XCTAssertNil(one.coRunCopies, "a rank alone on its host runs the profile's compute")
        XCTAssertEqual(one.backward, 9, accuracy: 1e-12)
        var two = layout
        two.ranksPerHost = 2
        XCTAssertEqual(ScalingModel.step(profile: p, cost: slow, ranks: 2, batchPerRank: 2, layout: two).coRunCopies, 2)
        two.coRuns = [four]
        let none = ScalingModel.step(profile: p, cost: slow, ranks: 2, batchPerRank: 2, layout: two)
        XCTAssertNil(none.coRunCopies, "no co-run at 1 thread per core: the profile's compute")
        XCTAssertEqual(none.backward, 9, accuracy: 1e-12)
        var shared = layout
        shared.exchange = .hostShared
        let h = ScalingModel.step(profile: p, cost: slow, ranks: 4, batchPerRank: 2, layout: shared)
        XCTAssertEqual(h.coRunCopies, 4, "host-shared ranks at that load take the co-run's compute too")
        XCTAssertEqual(h.backward, 11, accuracy: 1e-12, "the co-run's backward, not the profile's × 2")
        // One host: the sum-and-update pass moves G + 4G/4 = 2 bytes per gradient byte at the memory speed of the
        // co-run's optimizer (1 s for 5 × 32 bytes): A (24 bytes) 0.3 s, B 0.1 s, after backward.
        XCTAssertEqual(h.allreduce, 0.4, accuracy: 1e-12)
        XCTAssertEqual(h.step, 0.6 + 1.8 + 11 + 0.4, accuracy: 1e-12)
    }

    func testHostSharedOnOneHostIsOnePassThroughMemory() {
        // The profile's optimizer moves 5 × 32 bytes in 0.8 s: 0.005 s per byte. With 2 ranks each sums and
        // updates its half in one pass of G + 4G/2 = 3 bytes per gradient byte: A 24 bytes 0.36 s, B 0.12 s.
        let p = profile(buckets: twoBuckets)
        let layout = ModelLayout(ranksPerHost: 2, threadsPerRank: 1, cores: 2)
        let s = ScalingModel.step(profile: p, cost: slow, ranks: 2, batchPerRank: 2, layout: layout)
        XCTAssertEqual(s.exchange, .hostShared, "auto picks host-shared for 2 ranks on a host")
        XCTAssertFalse(s.overlap)
        XCTAssertEqual(s.update, 0, "the update is in the pass")
        XCTAssertEqual(s.allreduce, 0.48, accuracy: 1e-12)
        XCTAssertEqual(s.step, 2 + 9 + 0.48, accuracy: 1e-12)
        var flat = layout
        flat.exchange = .allreduce
        XCTAssertEqual(ScalingModel.step(profile: p, cost: slow, ranks: 2, batchPerRank: 2, layout: flat).exchange, .allreduce)
    }

    func testHostSharedAcrossHostsSendsTheGradientOnceAndOverlapsBackward() {
        // 2 hosts × 2 ranks. Per bucket byte: the sum of a slice (1 + 1/2 bytes of memory per byte, 0.0075 s) and
        // the slice owners' allreduce over 2 hosts sharing the link: 2·(1/2)·(bytes/2)·(2β) = 0.25 s per byte.
        // A (24 bytes, ready at 5) 5..11.18; B (8 bytes, ready at 9) 11.18..13.24. Update: 0.8/2 per rank.
        // After backward: wait to 11.18, A's update 0.3 → 11.48; wait to 13.24, B's 0.1 → 13.34.
        let p = profile(buckets: twoBuckets)
        let layout = ModelLayout(ranksPerHost: 2, threadsPerRank: 1, cores: 2)
        let s = ScalingModel.step(profile: p, cost: slow, ranks: 4, batchPerRank: 2, layout: layout)
        XCTAssertEqual(s.exchange, .hostShared)
        XCTAssertTrue(s.overlap, "across hosts the exchange overlaps backward by default")
        XCTAssertEqual(s.buckets[0].end, 11.18, accuracy: 1e-9)
        XCTAssertEqual(s.buckets[1].end, 13.24, accuracy: 1e-9)
        XCTAssertEqual(s.step, 2 + 13.34, accuracy: 1e-9)
        // A flat ring over the 4 ranks moves 2·(3/4) of each bucket over the link: A 5..14, B 14..17,
        // then 14 + 0.6 and 17 + 0.2.
        var flat = layout
        flat.exchange = .allreduce
        let f = ScalingModel.step(profile: p, cost: slow, ranks: 4, batchPerRank: 2, layout: flat)
        XCTAssertTrue(f.overlap)
        XCTAssertEqual(f.step, 2 + 17.2, accuracy: 1e-9)
        var after = layout
        after.overlap = false
        XCTAssertEqual(ScalingModel.step(profile: p, cost: slow, ranks: 4, batchPerRank: 2, layout: after).step,
                       2 + 9 + 6.18 + 0.3 + 2.06 + 0.1, accuracy: 1e-9)
    }

    func testTheLinksHostCPUDuringBackwardLengthensBackwardWhereNoCoreIsIdle() {
        // 2 hosts × 2 ranks on 2 cores each: no core idle. γ = 0.01 s per byte a host's link carries.
        // A fast link: A (24 bytes, ready at 5) moves within backward, B (ready at 9, the end) after it.
        // Host-shared puts 2·(1/2) of a bucket on each host's link: 0.24 s of CPU over 2 cores, so backward
        // is 9.12 (A's readiness moves to 5·9.12/9, still inside).
        let p = profile(buckets: twoBuckets)
        let layout = ModelLayout(ranksPerHost: 2, threadsPerRank: 1, cores: 2)
        let fast = LinkCost(alpha: 0, beta: 1e-6, hostCpuPerByte: 0.01)
        let s = ScalingModel.step(profile: p, cost: fast, ranks: 4, batchPerRank: 2, layout: layout)
        XCTAssertTrue(s.overlap)
        XCTAssertEqual(s.backward, 9.12, accuracy: 1e-9)
        XCTAssertEqual(s.linkCPU, 0.12, accuracy: 1e-9)
        XCTAssertEqual(s.buckets[0].ready, 5 * 9.12 / 9, accuracy: 1e-9)
        // A flat ring over the 4 ranks carries 2·(3/4) of A: 0.36 s of CPU, backward 9.18.
        var flat = layout
        flat.exchange = .allreduce
        XCTAssertEqual(ScalingModel.step(profile: p, cost: fast, ranks: 4, batchPerRank: 2, layout: flat).backward, 9.18, accuracy: 1e-9)
        // Two idle cores per host take the 0.24 s; without overlap, on one host, or unmeasured, backward keeps its 9 s.
        var roomy = layout
        roomy.cores = 4
        XCTAssertEqual(ScalingModel.step(profile: p, cost: fast, ranks: 4, batchPerRank: 2, layout: roomy).backward, 9, accuracy: 1e-12)
        var after = layout
        after.overlap = false
        XCTAssertEqual(ScalingModel.step(profile: p, cost: fast, ranks: 4, batchPerRank: 2, layout: after).backward, 9, accuracy: 1e-12)
        XCTAssertEqual(ScalingModel.step(profile: p, cost: fast, ranks: 2, batchPerRank: 2, layout: layout).backward, 9, accuracy: 1e-12)
        XCTAssertEqual(ScalingModel.step(profile: p, cost: LinkCost(alpha: 0, beta: 1e-6), ranks: 4, batchPerRank: 2,
                                         layout: layout).linkCPU, 0)

        // The slow link (β = 1/4): A takes 6.18 s from its readiness 5b/9, so the share of it inside a
        // backward of b is (b − 5b/9)/6.18, and b = 9 + (0.01·24/2)·(4b/9)/6.18.
        let slowCPU = LinkCost(alpha: 0, beta: 0.25, hostCpuPerByte: 0.01)
        let crossing = ScalingModel.step(profile: p, cost: slowCPU, ranks: 4, batchPerRank: 2, layout: layout)
        XCTAssertEqual(crossing.backward, 9 / (1 - 0.12 * 4 / (9 * 6.18)), accuracy: 1e-6)
        XCTAssertEqual(crossing.buckets[0].end - crossing.buckets[0].start, 6.18, accuracy: 1e-9)
    }

    func testRankCountsThatDoNotFillWholeHostsAreLeftOut() throws {
        let p = profile(buckets: twoBuckets)
        let study = try ScalingModel.study(profile: p, cost: slow, kind: .weak, batch: 2, ranks: [1, 2, 3, 4, 6],
                                           layout: ModelLayout(ranksPerHost: 2, threadsPerRank: 1, cores: 2))
        XCTAssertEqual(study.rows.map(\.ranks), [1, 2, 4, 6])
        XCTAssertEqual(study.skipped, [3])
        XCTAssertEqual(study.rows[0].exchange, .allreduce, "one rank exchanges nothing")
    }
}
