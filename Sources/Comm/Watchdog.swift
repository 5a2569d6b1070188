import CMPI
import Foundation
import Vocabulary

/// Turns a hang into an error. Every rank announces each collective it is
/// about to enter (a sequence number the same on all ranks, the step, and an
/// id) to rank 0 on a separate communicator; rank 0's watchdog thread keeps
/// the latest per rank. When some ranks have entered collective s and
/// others have not after `timeout` seconds, rank 0 names the missing ranks
/// and aborts the job. A rank whose own collective has not completed after
/// the timeout (all ranks arrived, but the network stalls) aborts too.
/// Needs MPI_THREAD_MULTIPLE: announcements come from the compute and the
/// communication thread, and rank 0's watchdog thread receives concurrently.
public final class Watchdog {
    let world: World
    let timeout: Double
    let describe: @Sendable (Int) -> String
    let board: MPI_Comm
    let lock = NSLock()
    var sequence: Int64 = 0
    var inFlight: (seq: Int64, step: Int64, id: Int64, since: Double)?
    var stopping = false
    var thread: Thread?
    static let tag: Int32 = 77

    /// `describe(id)` names a collective in messages, e.g. "allreduce of bucket 2 (conv5_3, conv5_2)".
    public init(world: World, timeout: Double, describe: @escaping @Sendable (Int) -> String) throws {
        self.world = world
        self.timeout = timeout
        self.describe = describe
        board = try world.duplicate()
        let t = Thread { [unowned self] in self.watch() }
        t.name = "vgg-dp watchdog"
        thread = t
        t.start()
    }

    /// Call right before entering a collective.
    public func announce(step: Int, id: Int) {
        lock.lock()
        sequence += 1
        let seq = sequence
        inFlight = (seq, Int64(step), Int64(id), Clock.now())
        lock.unlock()
        // On the stack: nothing is allocated per collective.
        withUnsafeTemporaryAllocation(of: Int64.self, capacity: 3) { message in
            message[0] = seq; message[1] = Int64(step); message[2] = Int64(id)
            let rc = MPI_Send(message.baseAddress, 3, vggdp_int64(), 0, Self.tag, board)
            if rc != vggdp_success() { fail("cannot reach rank 0's watchdog (MPI_Send returned \(rc))") }
        }
    }

    /// Call when the announced collective has completed.
    public func completed() {
        lock.lock()
        inFlight = nil
        lock.unlock()
    }

    /// Stops the thread. Every rank must call it (it ends with a barrier).
    public func stop() {
        guard thread != nil else { return }
        if MPI_Barrier(board) != vggdp_success() { fail("the closing barrier of the watchdog failed") }
        lock.lock()
        stopping = true
        lock.unlock()
        while thread?.isFinished == false { usleep(1000) }
        thread = nil
        var b: MPI_Comm? = board
        MPI_Comm_free(&b)
    }

    // MARK: - The decision (pure, for tests)

    /// A collective that some ranks entered and others have not, for longer than `timeout`.
    public struct Stall: Equatable, Sendable {
        public var step: Int64
        public var id: Int64
        /// Ranks that have not announced it.
        public var missing: [Int]
    }

    /// Rank 0's verdict from the board: `last[r]`, the latest sequence rank r
    /// announced; `firstSeen[s]`, when sequence s was first announced by any
    /// rank (with its step and id). A stall when the lowest rank is behind
    /// the highest and the next sequence has been waiting longer than `timeout`.
    public static func stall(last: [Int64], firstSeen: [Int64: (step: Int64, id: Int64, at: Double)],
                             now: Double, timeout: Double) -> Stall? {
        let lowest = last.min() ?? 0, highest = last.max() ?? 0
        guard lowest < highest, let pending = firstSeen[lowest + 1], now - pending.at > timeout else { return nil }
        return Stall(step: pending.step, id: pending.id, missing: last.indices.filter { last[$0] < lowest + 1 })
    }

    /// How long a rank waits on its own collective before it fails: rank 0's
    /// own wait fires later than its view of the board (which sees an
    /// announcement up to one poll after it was made), so that a missing rank
    /// is named whenever there is one; other ranks wait longer still, so that
    /// rank 0 speaks first.
    public static func ownTimeout(rank: Int, timeout: Double) -> Double { timeout * (rank == 0 ? 1.25 : 1.5) }

    // MARK: - The watchdog thread

    func watch() {
        let n = world.size
        var last = [Int64](repeating: 0, count: n)          // latest sequence announced, per rank
        var firstSeen: [Int64: (step: Int64, id: Int64, at: Double)] = [:]
        while true {
            lock.lock()
            let stop = stopping
            let mine = inFlight
            lock.unlock()
            if world.rank == 0 {
                drain(&last, &firstSeen)
                if let s = Self.stall(last: last, firstSeen: firstSeen, now: Clock.now(), timeout: timeout) {
                    fail("no progress for \(Int(timeout)) s at step \(s.step), \(describe(Int(s.id))): "
                        + "rank(s) \(s.missing.map(String.init).joined(separator: ", ")) have not arrived "
                        + "(\(n - s.missing.count) of \(n) ranks are waiting in it)")
                }
                let lowest = last.min() ?? 0
                firstSeen = firstSeen.filter { $0.key > lowest }
            }
            if let m = mine, Clock.now() - m.since > Self.ownTimeout(rank: world.rank, timeout: timeout) {
                fail("step \(m.step), \(describe(Int(m.id))) has not completed after \(Int(Clock.now() - m.since)) s on rank \(world.rank)")
            }
            if stop {
                if world.rank == 0 { drain(&last, &firstSeen) }
                return
            }
            usleep(100_000)
        }
    }

    func drain(_ last: inout [Int64], _ firstSeen: inout [Int64: (step: Int64, id: Int64, at: Double)]) {
        while true {
            var flag: Int32 = 0
            var status = MPI_Status()
            if MPI_Iprobe(vggdp_any_source(), Self.tag, board, &flag, &status) != vggdp_success() {
                fail("MPI_Iprobe on the watchdog's board failed")
            }
            if flag == 0 { return }
            var message = [Int64](repeating: 0, count: 3)
            let source = vggdp_status_source(&status)
            if MPI_Recv(&message, 3, vggdp_int64(), source, Self.tag, board, vggdp_status_ignore()) != vggdp_success() {
                fail("MPI_Recv on the watchdog's board failed")
            }
            last[Int(source)] = max(last[Int(source)], message[0])
            if firstSeen[message[0]] == nil { firstSeen[message[0]] = (message[1], message[2], Clock.now()) }
        }
    }

    func fail(_ message: String) -> Never {
        FileHandle.standardError.write(Data("vgg-dp: error: watchdog: \(message); aborting the job\n".utf8))
        world.abort(code: 3)
    }
}
