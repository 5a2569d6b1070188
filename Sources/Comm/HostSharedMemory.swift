import CMPI
import Foundation
import Vocabulary

/// Memory that the ranks of one host share, from one MPI-3 shared window
/// (`MPI_Win_allocate_shared` on the host's group): local rank 0 holds
/// `sharedFloats` that every local rank addresses, and every local rank holds
/// `privateFloats` of its own that the others can read. Each part starts on
/// a page. The window is locked for the whole run (passive target, no
/// checks); `synchronize()` is the point where every rank's writes before it
/// are visible to every rank after it (MPI_Win_sync, barrier, MPI_Win_sync).
///
/// Open MPI keeps the window's backing file in /dev/shm only while the ranks
/// attach; the memory is released by `MPI_Win_free` or when the last process
/// mapping it ends.
public final class HostSharedMemory {
    /// The ranks of this host.
    public let host: World
    public let sharedFloats: Int
    public let privateFloats: Int
    /// The shared part (on local rank 0), and each local rank's private part.
    public let shared: UnsafeMutablePointer<Float>
    public let segments: [UnsafeMutablePointer<Float>]
    var window: MPI_Win?

    public static let pageFloats = 1024

    public static func pageRounded(_ floats: Int) -> Int { (floats + pageFloats - 1) / pageFloats * pageFloats }

    /// Collective over `host`, whose ranks must share memory (from `World.splitByHost`).
    public init(host: World, sharedFloats: Int, privateFloats: Int) throws {
        self.host = host
        self.sharedFloats = sharedFloats
        self.privateFloats = privateFloats
        let sharedPart = Self.pageRounded(sharedFloats), privatePart = Self.pageRounded(privateFloats)
        let mine = (host.rank == 0 ? sharedPart : 0) + privatePart
        var base: UnsafeMutableRawPointer? = nil
        var win: MPI_Win? = nil
        try World.check(MPI_Win_allocate_shared(MPI_Aint(mine * 4), 4, vggdp_info_null(), host.comm, &base, &win),
                        "MPI_Win_allocate_shared")
        window = win
        var segments: [UnsafeMutablePointer<Float>] = []
        var root: UnsafeMutablePointer<Float>? = nil
        for r in 0..<host.size {
            var size: MPI_Aint = 0
            var unit: Int32 = 0
            var p: UnsafeMutableRawPointer? = nil
            try World.check(MPI_Win_shared_query(win, Int32(r), &size, &unit, &p), "MPI_Win_shared_query")
            let floats = p!.bindMemory(to: Float.self, capacity: Int(size) / 4)
            if r == 0 { root = floats }
            segments.append(r == 0 ? floats + sharedPart : floats)
        }
        shared = root!
        self.segments = segments
        try World.check(MPI_Win_lock_all(vggdp_mode_nocheck(), win), "MPI_Win_lock_all")
    }

    deinit { free() }

    /// Releases the window; collective over the host. Safe to call twice.
    public func free() {
        guard window != nil else { return }
        MPI_Win_unlock_all(window)
        MPI_Win_free(&window)
        window = nil
    }

    /// Every local rank's writes before this call are visible to every local rank after it.
    public func synchronize() throws {
        try World.check(MPI_Win_sync(window), "MPI_Win_sync")
        try host.barrier()
        try World.check(MPI_Win_sync(window), "MPI_Win_sync")
    }
}

extension World {
    /// The ranks of this group that share memory with this one (one group
    /// per host: MPI_Comm_split_type with MPI_COMM_TYPE_SHARED), ordered by rank.
    public func splitByHost() throws -> World {
        var sub: MPI_Comm? = nil
        try Self.check(MPI_Comm_split_type(comm, vggdp_comm_type_shared(), Int32(rank), vggdp_info_null(), &sub),
                       "MPI_Comm_split_type")
        return try World(comm: sub!, threadLevel: threadLevel, owns: true)
    }
}
