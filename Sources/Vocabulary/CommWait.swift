/// How an allreduce is waited for: in a blocking MPI_Allreduce, or polling
/// MPI_Iallreduce with MPI_Test and a sleep between tests, or `auto`: the
/// one `RankLayout.communicationWait` picks (polling for host-shared's
/// cross-host allreduce on a host with no core to spare for its wait,
/// blocking elsewhere). The measurements behind the rule are in
/// docs/SCALING.md.
public enum CommWait: String, Codable, CaseIterable, Sendable {
    case blocking, polling, auto
}
