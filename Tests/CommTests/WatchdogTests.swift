@testable import Comm
import XCTest

/// Rank 0's verdict from the announcement board, without MPI.
final class WatchdogTests: XCTestCase {
    typealias Seen = [Int64: (step: Int64, id: Int64, at: Double)]

    func testAllRanksLevelIsNoStall() {
        let seen: Seen = [3: (1, 0, 0)]
        XCTAssertNil(Watchdog.stall(last: [3, 3, 3], firstSeen: seen, now: 1000, timeout: 2))
    }

    func testMissingRankIsNamedOnlyAfterTheTimeout() {
        // Ranks 0 and 2 announced sequence 4 (step 7, bucket 1) at t = 10; rank 1 is still at 3.
        let seen: Seen = [4: (7, 1, 10)]
        XCTAssertNil(Watchdog.stall(last: [4, 3, 4], firstSeen: seen, now: 11.9, timeout: 2), "not yet 2 s")
        XCTAssertEqual(Watchdog.stall(last: [4, 3, 4], firstSeen: seen, now: 12.1, timeout: 2),
                       Watchdog.Stall(step: 7, id: 1, missing: [1]))
    }

    func testSeveralMissingRanksAreAllNamed() {
        let seen: Seen = [2: (0, 10_000, 0), 3: (0, 10_002, 5)]
        XCTAssertEqual(Watchdog.stall(last: [3, 1, 1, 2], firstSeen: seen, now: 100, timeout: 30)?.missing, [1, 2])
    }

    func testRankZeroSpeaksBeforeTheOthersTimeOut() {
        XCTAssertLessThan(Watchdog.ownTimeout(rank: 0, timeout: 10), Watchdog.ownTimeout(rank: 1, timeout: 10))
        XCTAssertGreaterThan(Watchdog.ownTimeout(rank: 0, timeout: 10), 10, "rank 0 reads the board first")
    }
}
