@testable import Reports
import XCTest

final class StatisticsTests: XCTestCase {
    func testSummaryAgainstHandComputedValues() {
        let s = Summary([4, 1, 3, 2, 5])
        XCTAssertEqual(s.count, 5)
        XCTAssertEqual(s.mean, 3)
        XCTAssertEqual(s.sd, 2.0.squareRoot(), accuracy: 1e-12) // population: mean of (4,1,0,1,4)
        XCTAssertEqual(s.min, 1)
        XCTAssertEqual(s.max, 5)
        XCTAssertEqual(s.median, 3)
        XCTAssertEqual(s.p95, 4.8, accuracy: 1e-12)              // 1 + 0.95·4 = 4.8 → between 4 and 5
        let even = Summary([10, 20, 30, 40])
        XCTAssertEqual(even.median, 25)
        XCTAssertEqual(Summary([]).count, 0)
    }
}
