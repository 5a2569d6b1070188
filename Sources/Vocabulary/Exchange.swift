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
