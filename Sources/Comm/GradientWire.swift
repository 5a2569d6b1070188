import Vocabulary

/// What a gradient exchange needs from a group of ranks: who it is, and an
/// in-place sum of a float slice. `World` is one; unit tests use a fake.
public protocol GradientGroup: AnyObject {
    var rank: Int { get }
    var size: Int { get }
    var threadLevel: ThreadLevel { get }
    func allreduceSum(_ p: UnsafeMutablePointer<Float>, count: Int, wire: GradientWire) throws
}

extension World: GradientGroup {}

/// How gradients travel: their type, with the 16-bit staging buffer that
/// type needs (`capacity` floats, the largest bucket), and how an allreduce
/// is waited for. Each exchange owns one: there is no path that silently
/// falls back to fp32.
public final class GradientWire {
    public let dtype: GradientDType
    public let capacity: Int
    public let wait: CommWait
    /// Sleep between MPI_Test calls when polling.
    public let pollMicroseconds: Int
    /// 16-bit copy of a bucket while it travels; nil for fp32.
    let staging: UnsafeMutablePointer<UInt16>?
    /// Bytes handed to the allreduce so far (count × the type's size).
    public private(set) var bytesSent = 0

    public init(dtype: GradientDType, capacity: Int, wait: CommWait = .blocking, pollMicroseconds: Int = 200) {
        precondition(wait != .auto, "--comm-wait auto is settled by RankLayout.communicationWait before a wire is built")
        self.dtype = dtype
        self.capacity = capacity
        self.wait = wait
        self.pollMicroseconds = pollMicroseconds
        staging = dtype == .fp32 ? nil : .allocate(capacity: max(capacity, 1))
    }

    deinit { staging?.deallocate() }

    /// "blocking MPI_Allreduce" or "MPI_Iallreduce tested every 200 µs".
    public var waitDescription: String { Self.describe(wait, pollMicroseconds: pollMicroseconds) }

    /// How `wait` waits, in the words of `waitDescription`.
    public static func describe(_ wait: CommWait, pollMicroseconds: Int = 200) -> String {
        wait == .blocking ? "blocking MPI_Allreduce" : "MPI_Iallreduce tested every \(pollMicroseconds) µs"
    }

    /// Counts a slice of `count` floats as sent.
    public func record(count: Int) { bytesSent += count * dtype.bytes }
}
