import CMPI
import Foundation

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
    public init(world: World, timeout: Double, describe: @escaping @Sendable (Int) -> String) {
        self.world = world
        self.timeout = timeout
        self.describe = describe
        var dup: MPI_Comm? = nil
        MPI_Comm_dup(world.comm, &dup)
        board = dup!
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
        inFlight = (seq, Int64(step), Int64(id), Self.now())
        lock.unlock()
        // On the stack: nothing is allocated per collective.
        withUnsafeTemporaryAllocation(of: Int64.self, capacity: 3) { message in
            message[0] = seq; message[1] = Int64(step); message[2] = Int64(id)
            _ = MPI_Send(message.baseAddress, 3, vggdp_int64(), 0, Self.tag, board)
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
        MPI_Barrier(board)
        lock.lock()
        stopping = true
        lock.unlock()
        while thread?.isFinished == false { usleep(1000) }
        thread = nil
        var b: MPI_Comm? = board
        MPI_Comm_free(&b)
    }

    static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }

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
                let lowest = last.min() ?? 0, highest = last.max() ?? 0
                if lowest < highest, let pending = firstSeen[lowest + 1], Self.now() - pending.at > timeout {
                    let missing = (0..<n).filter { last[$0] < lowest + 1 }
                    fail("no progress for \(Int(timeout)) s at step \(pending.step), \(describe(Int(pending.id))): "
                        + "rank(s) \(missing.map(String.init).joined(separator: ", ")) have not arrived "
                        + "(\(n - missing.count) of \(n) ranks are waiting in it)")
                }
                firstSeen = firstSeen.filter { $0.key > lowest }
            }
            // Rank 0's own wait fires later than its view of the board (which
            // sees an announcement up to one poll after it was made), so that
            // a missing rank is named whenever there is one; other ranks wait
            // longer still, so that rank 0 speaks first.
            if let m = mine, Self.now() - m.since > timeout * (world.rank == 0 ? 1.25 : 1.5) {
                fail("step \(m.step), \(describe(Int(m.id))) has not completed after \(Int(Self.now() - m.since)) s on rank \(world.rank)")
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
            MPI_Iprobe(vggdp_any_source(), Self.tag, board, &flag, &status)
            if flag == 0 { return }
            var message = [Int64](repeating: 0, count: 3)
            let source = vggdp_status_source(&status)
            MPI_Recv(&message, 3, vggdp_int64(), source, Self.tag, board, vggdp_status_ignore())
            last[Int(source)] = max(last[Int(source)], message[0])
            if firstSeen[message[0]] == nil { firstSeen[message[0]] = (message[1], message[2], Self.now()) }
        }
    }

    func fail(_ message: String) -> Never {
        FileHandle.standardError.write(Data("vgg-dp: error: watchdog: \(message); aborting the job\n".utf8))
        world.abort(code: 3)
    }
}
