import CMPI
import Foundation
import Vocabulary

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

/// How the communication thread waits for an allreduce to finish.
public enum CommWait: Equatable, Sendable, CustomStringConvertible {
    /// MPI_Allreduce: MPI busy-polls until done.
    case blocking
    /// MPI_Iallreduce, then MPI_Test every so many microseconds, sleeping between.
    case polling(microseconds: Int)

    public var description: String {
        switch self {
        case .blocking: return "blocking MPI_Allreduce"
        case let .polling(us): return "MPI_Iallreduce tested every \(us) µs"
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

/// The MPI world of this process: the only type, with BucketAllreducer and
/// AllreduceBenchmark, that calls MPI. Works without mpirun too (MPI's
/// singleton mode: one rank).
public final class World {
    public let rank: Int
    public let size: Int
    public let threadLevel: ThreadLevel
    public let hostName: String
    /// Host name of every rank, by rank.
    public let hostNames: [String]
    /// This rank's index among the ranks on its host, and their count.
    public let localRank: Int
    public let localSize: Int
    let comm: MPI_Comm

    /// Initialises MPI asking for `requested` thread support.
    public init(requested: ThreadLevel = .multiple) {
        var provided: Int32 = 0
        MPI_Init_thread(nil, nil, requested.mpiValue, &provided)
        comm = vggdp_comm_world()
        var r: Int32 = 0, s: Int32 = 0
        MPI_Comm_rank(comm, &r)
        MPI_Comm_size(comm, &s)
        rank = Int(r)
        size = Int(s)
        threadLevel = ThreadLevel(mpiValue: provided)

        var name = [CChar](repeating: 0, count: Int(vggdp_max_processor_name()) + 1)
        var len: Int32 = 0
        MPI_Get_processor_name(&name, &len)
        hostName = String(cString: name)

        // Every rank's host name, to know who shares a node (local rank/size).
        let width = 256
        var mine = [CChar](repeating: 0, count: width)
        for (i, c) in hostName.utf8CString.prefix(width - 1).enumerated() { mine[i] = c }
        var all = [CChar](repeating: 0, count: width * Int(s))
        MPI_Allgather(&mine, Int32(width), vggdp_char(), &all, Int32(width), vggdp_char(), comm)
        let names = (0..<Int(s)).map { i in
            all.withUnsafeBufferPointer { String(cString: $0.baseAddress! + i * width) }
        }
        hostNames = names
        localRank = names[0..<Int(r)].filter { $0 == names[Int(r)] }.count
        localSize = names.filter { $0 == names[Int(r)] }.count
    }

    public var isRoot: Bool { rank == 0 }

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
        MPI_Abort(comm, code)
        exit(code)
    }

    public func barrier() { MPI_Barrier(comm) }

    /// In-place sum over ranks.
    public func allreduceSum(_ p: UnsafeMutablePointer<Float>, count: Int) {
        MPI_Allreduce(vggdp_in_place(), p, Int32(count), vggdp_float(), vggdp_op_sum(), comm)
    }

    /// Sums in place over ranks, waiting the way `wait` says: inside MPI
    /// (busy-polling, lowest latency) or by testing a non-blocking allreduce
    /// and sleeping between tests, which leaves the core to the compute
    /// thread when ranks outnumber cores.
    public func allreduceSum(_ p: UnsafeMutablePointer<Float>, count: Int, wait: CommWait) {
        sum(UnsafeMutableRawPointer(p), count: count, type: vggdp_float(), op: vggdp_op_sum(), wait: wait)
    }

    /// Sums floats in place, sending them as `dtype`: 16-bit types are
    /// converted into `staging` (at least `count` values), summed there with
    /// an fp32-accumulating reduction, and converted back.
    public func allreduceSum(_ p: UnsafeMutablePointer<Float>, count: Int, dtype: GradientDType,
                             staging: UnsafeMutablePointer<UInt16>?, wait: CommWait = .blocking) {
        guard dtype != .fp32, let staging else { return allreduceSum(p, count: count, wait: wait) }
        HalfPrecision.encode(p, staging, count: count, dtype)
        sum(UnsafeMutableRawPointer(staging), count: count, type: vggdp_uint16(), op: HalfPrecision.op(dtype), wait: wait)
        HalfPrecision.decode(staging, p, count: count, dtype)
    }

    func sum(_ p: UnsafeMutableRawPointer, count: Int, type: MPI_Datatype, op: MPI_Op, wait: CommWait) {
        switch wait {
        case .blocking:
            MPI_Allreduce(vggdp_in_place(), p, Int32(count), type, op, comm)
        case let .polling(microseconds):
            var request = vggdp_request_null()
            MPI_Iallreduce(vggdp_in_place(), p, Int32(count), type, op, comm, &request)
            var done: Int32 = 0
            while true {
                MPI_Test(&request, &done, vggdp_status_ignore())
                if done != 0 { break }
                usleep(UInt32(microseconds))
            }
        }
    }

    public func allreduceSum(_ values: inout [Double]) {
        let n = Int32(values.count)
        values.withUnsafeMutableBufferPointer {
            _ = MPI_Allreduce(vggdp_in_place(), $0.baseAddress, n, vggdp_double(), vggdp_op_sum(), comm)
        }
    }

    public func allreduceMax(_ value: Double) -> Double {
        var v = value
        MPI_Allreduce(vggdp_in_place(), &v, 1, vggdp_double(), vggdp_op_max(), comm)
        return v
    }

    /// One value from every rank, by rank, on every rank.
    public func allgather(_ value: UInt64) -> [UInt64] {
        var mine = value
        var all = [UInt64](repeating: 0, count: size)
        MPI_Allgather(&mine, 1, vggdp_uint64(), &all, 1, vggdp_uint64(), comm)
        return all
    }

    /// Variable-length arrays from every rank, on rank 0 (nil elsewhere).
    public func gather(_ values: [Double], root: Int = 0) -> [[Double]]? {
        var count = Int32(values.count)
        var counts = [Int32](repeating: 0, count: size)
        MPI_Gather(&count, 1, vggdp_int(), &counts, 1, vggdp_int(), Int32(root), comm)
        var displacements = [Int32](repeating: 0, count: size)
        for i in 1..<max(size, 1) where i < size { displacements[i] = displacements[i - 1] + counts[i - 1] }
        let total = rank == root ? Int(counts.reduce(0, +)) : 0
        var all = [Double](repeating: 0, count: max(total, 1))
        var send = values
        MPI_Gatherv(&send, count, vggdp_double(), &all, &counts, &displacements, vggdp_double(), Int32(root), comm)
        guard rank == root else { return nil }
        return (0..<size).map { i in
            let start = Int(displacements[i])
            return Array(all[start..<(start + Int(counts[i]))])
        }
    }

    /// Rank `root`'s bytes, on every rank.
    public func broadcast(_ bytes: inout [UInt8], root: Int = 0) {
        var count = Int64(bytes.count)
        MPI_Bcast(&count, 8, vggdp_byte(), Int32(root), comm)
        if rank != root { bytes = [UInt8](repeating: 0, count: Int(count)) }
        var offset = 0
        while offset < Int(count) {
            let n = min(Int(count) - offset, 1 << 30)
            bytes.withUnsafeMutableBytes { _ = MPI_Bcast($0.baseAddress! + offset, Int32(n), vggdp_byte(), Int32(root), comm) }
            offset += n
        }
    }

    /// Broadcasts floats in place from `root`.
    public func broadcast(_ p: UnsafeMutablePointer<Float>, count: Int, root: Int = 0) {
        var offset = 0
        while offset < count {
            let n = min(count - offset, 1 << 28)
            MPI_Bcast(p + offset, Int32(n), vggdp_float(), Int32(root), comm)
            offset += n
        }
    }
}
