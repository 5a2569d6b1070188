import Comm
import VGGEngine
import Vocabulary

/// One replica per host: the parameter and momentum arenas live once, in
/// memory the host's ranks share (`HostSharedMemory`), and every rank's
/// gradient arena sits beside them. Each local rank owns one contiguous
/// slice of the arenas (`slices`), which it reduces over the host's
/// gradients and updates. Across hosts, the owners of the same slice (the
/// ranks with the same local index) form a group of their own (`across`).
final class HostReplica {
    let host: World
    /// The ranks with this rank's local index on the other hosts; nil on one host.
    let across: World?
    let memory: HostSharedMemory
    let parameters: FloatArena
    /// This rank's gradient arena, and every local rank's, by local rank.
    let gradients: FloatArena
    let gradientArenas: [UnsafeMutablePointer<Float>]
    /// The host's momentum arena (train mode).
    let momentum: FloatArena?
    /// Per local rank, two values: the first bucket and layer its slice found
    /// holding a NaN or Inf this step (−1: none).
    let verdicts: UnsafeMutablePointer<Float>
    /// Per local rank, the slice of the arenas it reduces and updates.
    let slices: [ArenaSlice]

    var localRank: Int { host.rank }
    var slice: ArenaSlice { slices[host.rank] }
    var storage: Network.ParameterStorage {
        Network.ParameterStorage(parameters: parameters, gradients: gradients, initializes: host.rank == 0)
    }

    /// Whether `choice` means host-shared for `group` in `mode`: auto picks it
    /// when every host runs the same number of ranks, two or more. With
    /// compression (`compressed`) host-shared compresses only what crosses
    /// hosts, so auto picks it only across hosts, and asking for it on one
    /// host, where nothing would be compressed, is refused.
    static func resolve(_ choice: ExchangeChoice, group: World, mode: Mode, compressed: Bool = false) throws -> Bool {
        guard mode.hasBackward, group.size > 1 else { return false }
        var perHost: [String: Int] = [:]
        for h in group.hostNames { perHost[h, default: 0] += 1 }
        let counts = Set(perHost.values)
        switch choice {
        case .allreduce: return false
        case .hostShared:
            guard counts.count == 1 else {
                let list = perHost.keys.sorted().map { "\($0)×\(perHost[$0]!)" }.joined(separator: ", ")
                throw TrainerError.usage("--exchange host-shared needs the same number of ranks on every host; this job has \(list)")
            }
            guard !compressed || perHost.count > 1 else {
                throw TrainerError.usage("--compression powersgd with --exchange host-shared compresses what crosses hosts, and all \(group.size) ranks are on one host: nothing would be compressed; use --exchange allreduce (or auto) to compress between them")
            }
            return true
        case .auto: return counts.count == 1 && counts.first! >= 2 && (!compressed || perHost.count > 1)
        }
    }

    /// Collective over `group`: splits it by host and across hosts and
    /// allocates the host's window.
    init(group: World, plan: BucketPlan, parameterCount n: Int, withMomentum: Bool) throws {
        host = try group.splitByHost()
        let hosts = group.size / host.size
        let byIndex = try group.split(color: host.rank, key: group.rank)
        across = hosts > 1 ? byIndex : nil
        let page = HostSharedMemory.pageRounded
        let shared = page(n) + (withMomentum ? page(n) : 0) + page(2 * host.size)
        memory = try HostSharedMemory(host: host, sharedFloats: shared, privateFloats: n)
        parameters = FloatArena(borrowing: memory.shared, count: n, owner: memory)
        momentum = withMomentum ? FloatArena(borrowing: memory.shared + page(n), count: n, owner: memory) : nil
        verdicts = memory.shared + page(n) + (withMomentum ? page(n) : 0)
        gradientArenas = memory.segments
        gradients = FloatArena(borrowing: memory.segments[host.rank], count: n, owner: memory)
        slices = Self.partition(count: n, buckets: plan.buckets, parts: host.size)
        if host.rank == 0, let m = momentum { m.base.update(repeating: 0, count: n) }
    }

    /// Splits `count` floats into `parts` contiguous slices of about equal
    /// size. A boundary moves to the nearest bucket edge when that edge is
    /// within a tenth of a slice of the even split (buckets stay whole);
    /// otherwise it falls on a multiple of 16 floats (64 bytes).
    static func partition(count: Int, buckets: [Bucket], parts: Int) -> [ArenaSlice] {
        let edges = Set(buckets.flatMap { [$0.offset, $0.end] }).sorted()
        var bounds = [0]
        for k in 1..<max(parts, 1) {
            let even = count * k / parts
            let nearest = edges.min { abs($0 - even) < abs($1 - even) } ?? even
            let b = abs(nearest - even) <= count / parts / 10 ? nearest : even / 16 * 16
            bounds.append(max(b, bounds.last!))
        }
        bounds.append(count)
        return (0..<parts).map { ArenaSlice(offset: bounds[$0], count: bounds[$0 + 1] - bounds[$0]) }
    }

    /// Releases the window and the replica's communicators; collective over
    /// the group (the host's ranks, then the slice owners across hosts).
    func free() {
        memory.free()
        across?.free()
        host.free()
    }
}
