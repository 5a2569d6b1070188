@testable import Trainer
import VGGEngine
import XCTest

final class BucketPlanTests: XCTestCase {
    /// Buckets must tile the arena exactly, in reverse layer order, each one
    /// contiguous, so an allreduce of a bucket is one call on one slice.
    func assertTiles(_ plan: BucketPlan, _ spec: NetworkSpec, file: StaticString = #filePath, line: UInt = #line) {
        var end = spec.parameterCount
        for b in plan.buckets {
            XCTAssertEqual(b.slice.end, end, "buckets are contiguous, last layer first", file: file, line: line)
            XCTAssertEqual(b.layers, b.layers.sorted(by: >), file: file, line: line)
            end = b.slice.offset
        }
        XCTAssertEqual(end, 0, file: file, line: line)
    }

    func testVGG16PlanAt25MiB() {
        let spec = NetworkSpec()
        let plan = BucketPlan(spec: spec, bucketMB: 25)
        assertTiles(plan, spec)
        let names = plan.buckets.map { $0.layers.map { spec.layers[$0].name } }
        // fc8 (16 MB) is below 25 MiB so fc7 joins it; fc6 (411 MB) stands alone.
        XCTAssertEqual(names[0], ["fc8", "fc7"])
        XCTAssertEqual(names[1], ["fc6"])
        XCTAssertEqual(names[2], ["conv5_3", "conv5_2", "conv5_1"])
        XCTAssertTrue(plan.buckets.dropLast().allSatisfy { $0.bytes >= 25 * 1024 * 1024 })
    }

    func testZeroMeansOneBucketPerLayer() {
        let spec = NetworkSpec(model: .vgg11)
        let plan = BucketPlan(spec: spec, bucketMB: 0)
        assertTiles(plan, spec)
        XCTAssertEqual(plan.buckets.count, 11) // 8 conv + 3 fc
        XCTAssertTrue(plan.buckets.allSatisfy { $0.layers.count == 1 })
    }

    func testHugeTargetGivesOneBucketAndFingerprintsDiffer() {
        let spec = NetworkSpec(model: .vgg13, imageSize: 64, classes: 10, widthDivisor: 8)
        let one = BucketPlan(spec: spec, bucketMB: 10_000)
        XCTAssertEqual(one.buckets.count, 1)
        assertTiles(one, spec)
        let many = BucketPlan(spec: spec, bucketMB: 0)
        XCTAssertNotEqual(one.fingerprint, many.fingerprint)
        XCTAssertEqual(many.fingerprint, BucketPlan(spec: spec, bucketMB: 0).fingerprint)
    }
}
