import Comm
import Foundation
@testable import Trainer
import VGGEngine
import Vocabulary
import Reports
import XCTest

/// A group of `size` ranks inside one process, in which every other rank
/// holds the same gradient as this one: the sum is `size` times it (rounded
/// to the wire's type first, as a 16-bit exchange rounds). Records every call.
final class FakeGroup: GradientGroup {
    let rank = 0
    let size: Int
    let threadLevel = ThreadLevel.multiple
    var failWith: Error?
    private let lock = NSLock()
    private var log: [(offset: Int, count: Int, dtype: GradientDType)] = []
    let base: UnsafeMutablePointer<Float>

    init(size: Int, base: UnsafeMutablePointer<Float>) {
        self.size = size
        self.base = base
    }

    var calls: [(offset: Int, count: Int, dtype: GradientDType)] {
        lock.lock()
        defer { lock.unlock() }
        return log
    }

    func allreduceSum(_ p: UnsafeMutablePointer<Float>, count: Int, wire: GradientWire) throws {
        if let failWith { throw failWith }
        lock.lock()
        log.append((p - base, count, wire.dtype))
        lock.unlock()
        wire.record(count: count)
        for i in 0..<count {
            let x: Float
            switch wire.dtype {
            case .fp32: x = p[i]
            case .bf16: x = HalfPrecision.float(bf16: HalfPrecision.bf16(p[i]))
            case .fp16: x = HalfPrecision.float(fp16: HalfPrecision.fp16(p[i]))
            }
            p[i] = x * Float(size)
        }
    }
}

/// Each exchange, in process, on a tiny network whose gradients the test
/// writes: what travels, in which order, and the update it ends with.
final class GradientExchangeTests: XCTestCase {
    let spec = NetworkSpec(model: .vgg11, imageSize: 32, classes: 10, widthDivisor: 16)

    struct Setup {
        var network: Network
        var velocity: FloatArena
        var plan: BucketPlan
    }

    /// A network with parameters from `seed` and a made-up gradient g[i] = sin(i)/100.
    func setup(bucketMB: Double = 0.01, poison: Int? = nil) throws -> Setup {
        let network = try Network(spec: spec, batch: 1, seed: 3)
        for i in 0..<network.gradients.count { network.gradients[i] = Float(sin(Double(i))) / 100 }
        if let p = poison { network.gradients[p] = .nan }
        return Setup(network: network, velocity: FloatArena(count: network.parameters.count),
                     plan: BucketPlan(spec: spec, bucketMB: bucketMB))
    }

    func exchange(_ kind: String, _ s: Setup, group: GradientGroup, dtype: GradientDType = .fp32,
                  skipNonfinite: Bool = false) throws -> GradientExchange {
        let update = BucketUpdate(network: s.network, velocity: s.velocity, optimizer: SGD(), ranks: group.size,
                                  skipNonfinite: skipNonfinite)
        if kind == "overlapped" {
            return try OverlappedAllreduce(group: group, network: s.network, plan: s.plan, update: update, dtype: dtype,
                                           watchdog: nil)
        }
        return InlineAllreduce(group: group, network: s.network, plan: s.plan, update: update, dtype: dtype,
                               watchdog: nil)
    }

    /// One step as the trainer drives it: layers ready from the last to the first.
    func step(_ e: GradientExchange, _ s: Setup) throws -> NonfiniteGradient? {
        e.beginStep(0)
        for l in stride(from: s.network.layers.count - 1, through: 0, by: -1) where s.network.layers[l].parameterSlice.count > 0 {
            e.layerReady(l)
        }
        var times = StepTimes()
        defer { e.stop() }
        return try e.finish(step: 0, times: &times)
    }

    /// SGD on the unexchanged gradient, as one rank alone would apply it.
    func reference(_ s: Setup) -> [Float] {
        let v = FloatArena(count: s.network.parameters.count)
        let p = FloatArena(count: s.network.parameters.count)
        for i in 0..<p.count { p[i] = s.network.parameters[i] }
        SGD().step(parameters: p, gradients: s.network.gradients, velocity: v,
                   slice: ArenaSlice(offset: 0, count: p.count), gradientScale: 1)
        return (0..<p.count).map { p[$0] }
    }

    func parameters(_ s: Setup) -> [Float] { (0..<s.network.parameters.count).map { s.network.parameters[$0] } }

    func testEachExchangeSendsEveryBucketOnceAndAppliesTheMean() throws {
        for kind in ["inline", "overlapped"] {
            let s = try setup()
            XCTAssertGreaterThan(s.plan.buckets.count, 2)
            let expected = reference(s)
            let group = FakeGroup(size: 2, base: s.network.gradients.base)
            XCTAssertNil(try step(try exchange(kind, s, group: group), s), kind)
            // Backward completes buckets in plan order, and both exchanges send them so.
            XCTAssertEqual(group.calls.map(\.offset), s.plan.buckets.map(\.offset), kind)
            XCTAssertEqual(group.calls.map(\.count), s.plan.buckets.map(\.count), kind)
            XCTAssertTrue(group.calls.allSatisfy { $0.dtype == .fp32 }, kind)
            // Sum of two equal gradients, times 1/2: exactly the gradient, so exactly one rank's update.
            XCTAssertEqual(parameters(s), expected, kind)
        }
    }

    func testOneRankGroupSendsNothingAndUpdatesAlone() throws {
        let s = try setup()
        let expected = reference(s)
        let group = FakeGroup(size: 1, base: s.network.gradients.base)
        XCTAssertNil(try step(try exchange("inline", s, group: group, dtype: .bf16), s))
        XCTAssertTrue(group.calls.isEmpty, "a one-rank group exchanges nothing, in any dtype")
        XCTAssertEqual(parameters(s), expected)
    }

    func testSixteenBitWireTravelsHalfTheBytesAndRounds() throws {
        for kind in ["inline", "overlapped"] {
            let s = try setup()
            let fp32 = reference(s)
            let group = FakeGroup(size: 2, base: s.network.gradients.base)
            let e = try exchange(kind, s, group: group, dtype: .bf16)
            XCTAssertNil(try step(e, s), kind)
            XCTAssertTrue(group.calls.allSatisfy { $0.dtype == .bf16 }, kind)
            XCTAssertEqual(group.calls.map(\.count).reduce(0, +), s.network.parameters.count, kind)
            XCTAssertNotEqual(parameters(s), fp32, "\(kind): bf16 rounding must show in the update")
        }
    }

    func testNonfiniteBucketIsNamedAndSkippingLeavesParametersUntouched() throws {
        for kind in ["inline", "overlapped"] {
            let s = try setup(poison: 5)
            let before = parameters(s)
            let group = FakeGroup(size: 2, base: s.network.gradients.base)
            let bad = try step(try exchange(kind, s, group: group, skipNonfinite: true), s)
            // Layer 0's weights hold index 5: the bucket with the lowest layer, the last one.
            XCTAssertEqual(bad, NonfiniteGradient(bucket: s.plan.buckets.count - 1, layer: 0), kind)
            XCTAssertEqual(parameters(s), before, "\(kind): a skipped step changes no parameter")
            XCTAssertEqual(group.calls.count, s.plan.buckets.count, "\(kind): every bucket still travels")
        }
    }

    func testAFailedAllreduceReachesTheComputeThread() throws {
        for kind in ["inline", "overlapped"] {
            let s = try setup()
            let group = FakeGroup(size: 2, base: s.network.gradients.base)
            group.failWith = CommError.mpi("MPI_Allreduce failed: test")
            XCTAssertThrowsError(try step(try exchange(kind, s, group: group), s), kind) { error in
                XCTAssertEqual("\(error)", "MPI_Allreduce failed: test", kind)
            }
        }
    }
}
