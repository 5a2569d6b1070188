/// How the communication thread waits for an allreduce: in a blocking
/// MPI_Allreduce, or polling MPI_Iallreduce with MPI_Test and a sleep
/// between tests, or `auto`: the one `RankLayout.communicationWait` picks
/// (polling for host-shared's cross-host thread on a host with no core to
/// spare for it, blocking elsewhere). The measurements behind the rule are
/// in docs/SCALING.md.
public enum CommWait: String, Codable, CaseIterable, Sendable {
    case blocking, polling, auto
}
