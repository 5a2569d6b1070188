/// How the communication thread waits for an allreduce: in a blocking
/// MPI_Allreduce (the default), or polling MPI_Iallreduce with MPI_Test and
/// a sleep between tests, for hosts where a spinning MPI thread costs more
/// than a late wake-up. The measurements behind the default are in
/// docs/SCALING.md.
public enum CommWait: String, Codable, CaseIterable, Sendable {
    case blocking, polling
}
