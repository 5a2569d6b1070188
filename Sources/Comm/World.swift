import CMPI
import Foundation
import Vocabulary

/// A group of MPI ranks and the collectives vgg-dp uses: the only type, with
/// the communication thread (`BucketAllreducer`), the `Watchdog` and
/// `AllreduceBenchmark`, that calls MPI. `World.start` makes the job's group
/// (MPI_COMM_WORLD; MPI's singleton mode when run without mpirun);
/// `split(color:key:)` makes smaller ones, a one-rank group among them.
///
/// Communicators return errors instead of aborting (MPI_ERRORS_RETURN), and
/// every MPI return code becomes a `CommError` naming the call.
public final class World {
    public let rank: Int
    public let size: Int
    public let threadLevel: ThreadLevel
    public let hostName: String
    /// Host name of every rank of this group, by rank.
    public let hostNames: [String]
    /// This rank's index among the group's ranks on its host, and their count.
    public let localRank: Int
    public let localSize: Int
    let comm: MPI_Comm
    let ownsComm: Bool
    private var freed = false

    /// Initialises MPI asking for `requested` thread support; the group of all ranks.
    public static func start(requested: ThreadLevel = .multiple) throws -> World {
        var provided: Int32 = 0
        try check(MPI_Init_thread(nil, nil, requested.mpiValue, &provided), "MPI_Init_thread")
        let world: MPI_Comm = vggdp_comm_world()
        try check(MPI_Comm_set_errhandler(world, vggdp_errors_return()), "MPI_Comm_set_errhandler")
        return try World(comm: world, threadLevel: ThreadLevel(mpiValue: provided), owns: false)
    }

    init(comm: MPI_Comm, threadLevel: ThreadLevel, owns: Bool) throws {
        self.comm = comm
        self.threadLevel = threadLevel
        ownsComm = owns
        var r: Int32 = 0, s: Int32 = 0
        try Self.check(MPI_Comm_rank(comm, &r), "MPI_Comm_rank")
        try Self.check(MPI_Comm_size(comm, &s), "MPI_Comm_size")
        rank = Int(r)
        size = Int(s)

        var name = [CChar](repeating: 0, count: Int(vggdp_max_processor_name()) + 1)
        var len: Int32 = 0
        try Self.check(MPI_Get_processor_name(&name, &len), "MPI_Get_processor_name")
        hostName = String(cString: name)

        // Every rank's host name, to know who shares a node (local rank/size).
        let width = 256
        var mine = [CChar](repeating: 0, count: width)
        for (i, c) in hostName.utf8CString.prefix(width - 1).enumerated() { mine[i] = c }
        var all = [CChar](repeating: 0, count: width * Int(s))
        try Self.check(MPI_Allgather(&mine, Int32(width), vggdp_char(), &all, Int32(width), vggdp_char(), comm), "MPI_Allgather")
        let names = (0..<Int(s)).map { i in
            all.withUnsafeBufferPointer { String(cString: $0.baseAddress! + i * width) }
        }
        hostNames = names
        localRank = names[0..<Int(r)].filter { $0 == names[Int(r)] }.count
        localSize = names.filter { $0 == names[Int(r)] }.count
    }

    /// Frees a communicator this group made (`split`, `splitByHost`); a no-op
    /// for the world's own, on a second call, and once MPI is finalized. Call
    /// it before `finalize()`: a group released later (by another thread's
    /// last reference, say) must not call MPI then. Collective over the group.
    public func free() {
        guard ownsComm, !freed else { return }
        freed = true
        var finalized: Int32 = 0
        MPI_Finalized(&finalized)
        guard finalized == 0 else { return }
        var c: MPI_Comm? = comm
        MPI_Comm_free(&c)
    }

    deinit { free() }

    public var isRoot: Bool { rank == 0 }

    /// The ranks that pass the same `color`, ordered by `key` (then by rank
    /// here). Collective over this group. `split(color: rank)` is this rank alone.
    public func split(color: Int, key: Int = 0) throws -> World {
        var sub: MPI_Comm? = nil
        try Self.check(MPI_Comm_split(comm, Int32(color), Int32(key), &sub), "MPI_Comm_split")
        return try World(comm: sub!, threadLevel: threadLevel, owns: true)
    }

    /// A copy of this group with its own message space (for the watchdog's board).
    func duplicate() throws -> MPI_Comm {
        var dup: MPI_Comm? = nil
        try Self.check(MPI_Comm_dup(comm, &dup), "MPI_Comm_dup")
        return dup!
    }

    /// The MPI library's own version line, e.g. "Open MPI v4.1.4, ...".
    public static var libraryVersion: String {
        var buf = [CChar](repeating: 0, count: Int(vggdp_max_library_version()) + 1)
        var len: Int32 = 0
        MPI_Get_library_version(&buf, &len)
        return String(cString: buf).split(separator: "\n").first.map(String.init) ?? ""
    }

    public func finalize() { MPI_Finalize() }

    /// Ends every rank of the job at once with `code`.
    public func abort(code: Int32) -> Never {
        TemporaryFiles.removeAllAndHold()  // the abort ends this process too: no half-written file stays
        MPI_Abort(comm, code)
        exit(code)
    }

    /// Throws a `CommError` naming `call` unless `code` is MPI_SUCCESS.
    static func check(_ code: Int32, _ call: StaticString) throws {
        guard code != vggdp_success() else { return }
        var text = [CChar](repeating: 0, count: 512)
        var len: Int32 = 0
        MPI_Error_string(code, &text, &len)
        throw CommError.mpi("\(call) failed: \(String(cString: text)) (MPI error \(code))")
    }

    public func barrier() throws { try Self.check(MPI_Barrier(comm), "MPI_Barrier") }

    /// In-place fp32 sum over ranks.
    public func allreduceSum(_ p: UnsafeMutablePointer<Float>, count: Int) throws {
        try sum(UnsafeMutableRawPointer(p), count: count, type: vggdp_float(), op: vggdp_op_sum(), wait: .blocking, pollMicroseconds: 0)
    }

    /// Sums in place over ranks in `wire`'s type, waiting the way `wire.wait`
    /// says: inside MPI (busy-polling, lowest latency) or by testing a
    /// non-blocking allreduce and sleeping between tests, which leaves the
    /// core to the compute thread when ranks outnumber cores.
    public func allreduceSum(_ p: UnsafeMutablePointer<Float>, count: Int, wire: GradientWire) throws {
        wire.record(count: count)
        guard let staging = wire.staging else {
            return try sum(UnsafeMutableRawPointer(p), count: count, type: vggdp_float(), op: vggdp_op_sum(),
                           wait: wire.wait, pollMicroseconds: wire.pollMicroseconds)
        }
        precondition(count <= wire.capacity, "bucket of \(count) floats exceeds the 16-bit staging buffer of \(wire.capacity)")
        HalfPrecision.encode(p, staging, count: count, wire.dtype)
        try sum(UnsafeMutableRawPointer(staging), count: count, type: vggdp_uint16(), op: HalfPrecision.op(wire.dtype),
                wait: wire.wait, pollMicroseconds: wire.pollMicroseconds)
        HalfPrecision.decode(staging, p, count: count, wire.dtype)
    }

    func sum(_ p: UnsafeMutableRawPointer, count: Int, type: MPI_Datatype, op: MPI_Op, wait: CommWait,
             pollMicroseconds microseconds: Int) throws {
        switch wait {
        case .auto:
            preconditionFailure("--comm-wait auto is settled by RankLayout.communicationWait before an exchange is built")
        case .blocking:
            try Self.check(MPI_Allreduce(vggdp_in_place(), p, Int32(count), type, op, comm), "MPI_Allreduce")
        case .polling:
            var request = vggdp_request_null()
            try Self.check(MPI_Iallreduce(vggdp_in_place(), p, Int32(count), type, op, comm, &request), "MPI_Iallreduce")
            var done: Int32 = 0
            while true {
                try Self.check(MPI_Test(&request, &done, vggdp_status_ignore()), "MPI_Test")
                if done != 0 { break }
                usleep(UInt32(microseconds))
            }
        }
    }

    public func allreduceMax(_ value: Double) throws -> Double {
        var v = value
        try Self.check(MPI_Allreduce(vggdp_in_place(), &v, 1, vggdp_double(), vggdp_op_max(), comm), "MPI_Allreduce")
        return v
    }

    /// One value from every rank, by rank, on every rank.
    public func allgather(_ value: UInt64) throws -> [UInt64] {
        var mine = value
        var all = [UInt64](repeating: 0, count: size)
        try Self.check(MPI_Allgather(&mine, 1, vggdp_uint64(), &all, 1, vggdp_uint64(), comm), "MPI_Allgather")
        return all
    }

    /// Every rank's value, by rank, on `root` (nil elsewhere). Values travel
    /// as JSON, so sizes may differ between ranks.
    public func gather<T: Codable>(_ value: T, root: Int = 0) throws -> [T]? {
        let bytes = try Self.encoder.encode(value)
        var count = Int32(bytes.count)
        var counts = [Int32](repeating: 0, count: size)
        try Self.check(MPI_Gather(&count, 1, vggdp_int(), &counts, 1, vggdp_int(), Int32(root), comm), "MPI_Gather")
        var displacements = [Int32](repeating: 0, count: size)
        for i in 1..<max(size, 1) { displacements[i] = displacements[i - 1] + counts[i - 1] }
        let total = rank == root ? Int(counts.reduce(0, +)) : 0
        var all = [UInt8](repeating: 0, count: max(total, 1))
        var send = [UInt8](bytes)
        try Self.check(MPI_Gatherv(&send, count, vggdp_byte(), &all, &counts, &displacements, vggdp_byte(), Int32(root), comm),
                       "MPI_Gatherv")
        guard rank == root else { return nil }
        return try (0..<size).map { i in
            let start = Int(displacements[i])
            return try Self.decoder.decode(T.self, from: Data(all[start..<(start + Int(counts[i]))]))
        }
    }

    /// `root`'s value on every rank (`value` is read on root only). Travels as JSON.
    public func broadcast<T: Codable>(_ value: T?, root: Int = 0) throws -> T {
        var bytes = rank == root ? [UInt8](try Self.encoder.encode(value!)) : []
        try broadcast(&bytes, root: root)
        return try Self.decoder.decode(T.self, from: Data(bytes))
    }

    /// JSON that carries NaN and ±Inf too (a loss may be NaN), and doubles exactly.
    static var encoder: JSONEncoder {
        let e = JSONEncoder()
        e.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return e
    }
    static var decoder: JSONDecoder {
        let d = JSONDecoder()
        d.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return d
    }

    /// Rank `root`'s bytes, on every rank.
    func broadcast(_ bytes: inout [UInt8], root: Int = 0) throws {
        var count = Int64(bytes.count)
        try Self.check(MPI_Bcast(&count, 8, vggdp_byte(), Int32(root), comm), "MPI_Bcast")
        if rank != root { bytes = [UInt8](repeating: 0, count: Int(count)) }
        var offset = 0
        while offset < Int(count) {
            let n = min(Int(count) - offset, 1 << 30)
            let rc = bytes.withUnsafeMutableBytes { MPI_Bcast($0.baseAddress! + offset, Int32(n), vggdp_byte(), Int32(root), comm) }
            try Self.check(rc, "MPI_Bcast")
            offset += n
        }
    }

    /// Sends `count` floats (at most 2³¹ − 1) to rank `to` (blocking; `receive` takes them).
    public func send(_ p: UnsafePointer<Float>, count: Int, to rank: Int) throws {
        try Self.check(MPI_Send(p, Int32(count), vggdp_float(), Int32(rank), Self.relayTag, comm), "MPI_Send")
    }

    /// Receives `count` floats from rank `from` into `p`.
    public func receive(_ p: UnsafeMutablePointer<Float>, count: Int, from rank: Int) throws {
        try Self.check(MPI_Recv(p, Int32(count), vggdp_float(), Int32(rank), Self.relayTag, comm, vggdp_status_ignore()),
                       "MPI_Recv")
    }

    /// The tag of `send` and `receive`.
    static let relayTag: Int32 = 78

    /// Broadcasts floats in place from `root`.
    public func broadcast(_ p: UnsafeMutablePointer<Float>, count: Int, root: Int = 0) throws {
        var offset = 0
        while offset < count {
            let n = min(count - offset, 1 << 28)
            try Self.check(MPI_Bcast(p + offset, Int32(n), vggdp_float(), Int32(root), comm), "MPI_Bcast")
            offset += n
        }
    }
}

/// MPI's thread support levels, in increasing order.
public enum ThreadLevel: Int, Comparable, CustomStringConvertible, Codable, Sendable {
    case single = 0, funneled, serialized, multiple

    public static func < (a: ThreadLevel, b: ThreadLevel) -> Bool { a.rawValue < b.rawValue }

    public var description: String {
        switch self {
        case .single: return "MPI_THREAD_SINGLE"
        case .funneled: return "MPI_THREAD_FUNNELED"
        case .serialized: return "MPI_THREAD_SERIALIZED"
        case .multiple: return "MPI_THREAD_MULTIPLE"
        }
    }

    var mpiValue: Int32 {
        switch self {
        case .single: return vggdp_thread_single()
        case .funneled: return vggdp_thread_funneled()
        case .serialized: return vggdp_thread_serialized()
        case .multiple: return vggdp_thread_multiple()
        }
    }

    init(mpiValue v: Int32) {
        switch v {
        case vggdp_thread_multiple(): self = .multiple
        case vggdp_thread_serialized(): self = .serialized
        case vggdp_thread_funneled(): self = .funneled
        default: self = .single
        }
    }
}

public enum CommError: Error, CustomStringConvertible {
    case threadLevel(required: ThreadLevel, provided: ThreadLevel)
    case mpi(String)

    public var description: String {
        switch self {
        case let .threadLevel(r, p):
            return "this MPI library provides \(p) but the overlapped allreduce needs \(r); rebuild OpenMPI with thread support or run with --no-overlap"
        case let .mpi(m): return m
        }
    }
}
