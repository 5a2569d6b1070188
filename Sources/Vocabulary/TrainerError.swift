/// An error with a message a user can act on, and the exit status it ends
/// the program with.
public enum TrainerError: Error, CustomStringConvertible {
    /// Bad input: exit status 2.
    case usage(String)
    /// Something failed during the run: exit status 1.
    case failed(String)

    public var description: String {
        switch self {
        case let .usage(m), let .failed(m): return m
        }
    }

    public var exitCode: Int32 {
        switch self {
        case .usage: return 2
        case .failed: return 1
        }
    }
}
