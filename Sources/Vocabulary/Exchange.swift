/// How gradients are averaged across ranks (`--exchange`).
public enum ExchangeChoice: String, Codable, CaseIterable, Sendable {
    /// Every rank holds a replica; gradients are summed by MPI_Allreduce.
    case allreduce
    /// One replica per host in memory its ranks share; each rank reduces and
    /// updates its slice; across hosts, slice owners allreduce their slices.
    case hostShared = "host-shared"
    /// host-shared when every host runs two or more ranks (and the same number), else allreduce.
    case auto
}

/// Where a job's ranks sit, and what the trainer makes of it when the user
/// does not say: which exchange `--exchange auto` picks and whether an
/// allreduce overlaps backward. The trainer and `vgg-dp model` both ask it.
public struct RankLayout: Equatable, Sendable {
    public var hosts: Int
    public var ranksPerHost: Int
    public var threadsPerRank: Int
    /// Cores on each host.
    public var cores: Int

    public init(hosts: Int, ranksPerHost: Int, threadsPerRank: Int, cores: Int) {
        self.hosts = hosts
        self.ranksPerHost = ranksPerHost
        self.threadsPerRank = threadsPerRank
        self.cores = cores
    }

    public var ranks: Int { hosts * ranksPerHost }

    /// Whether an allreduce overlaps backward by default. Overlap pays when
    /// a network moves the bytes (ranks on several hosts) or a core is idle
    /// for the communication thread. On one host with every core computing,
    /// a shared-memory allreduce is copies and sums on the busy cores: beside
    /// backward it slows backward by more than it hides (the measurements are
    /// in docs/ARCHITECTURE.md, "Figures behind the defaults").
    public var overlapsAllreduce: Bool { hosts > 1 || ranksPerHost * threadsPerRank < cores }

    /// How an allreduce is waited for when the user says `auto`.
    /// host-shared's cross-host allreduce (`exchange`, 2 or more hosts)
    /// polls where a blocking MPI_Allreduce would spin on every core the
    /// host has: overlapping backward (`overlapped`, on the communication
    /// thread) when the host's ranks × (threads + 1) exceed its cores, and
    /// after backward (on the compute thread, every rank waiting) when its
    /// ranks are as many as its cores. Polled, its one allreduce per slice
    /// leaves the cores to backward and to the network stack that moves its
    /// bytes. Everywhere else, blocking: an allreduce's ring over all ranks
    /// advances only when it is tested, and measured slower polled; a wait
    /// with a core to spare may spin. The measurements are in
    /// docs/SCALING.md.
    public func communicationWait(_ choice: CommWait, exchange: ExchangeChoice, overlapped: Bool) -> CommWait {
        guard choice == .auto else { return choice }
        guard exchange == .hostShared, hosts > 1 else { return .blocking }
        let noSpareCore = overlapped ? ranksPerHost * (threadsPerRank + 1) > cores : ranksPerHost >= cores
        return noSpareCore ? .polling : .blocking
    }

    /// Whether `choice` runs host-shared here (every host runs the same number of ranks).
    public func runsHostShared(_ choice: ExchangeChoice) -> Bool {
        switch choice {
        case .allreduce: return false
        case .hostShared: return ranks > 1
        case .auto: return ranksPerHost >= 2
        }
    }

    /// Threads per core on each host.
    public var threadsPerCore: Double { Double(ranksPerHost * threadsPerRank) / Double(max(cores, 1)) }

    /// How many times more threads than cores a host runs (1 when it has enough cores).
    public var oversubscription: Double { max(1, threadsPerCore) }
}
