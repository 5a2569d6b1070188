import Vocabulary

/// What a gradient exchange needs from a group of ranks: who it is, and an
/// in-place sum of a float slice. `World` is one; unit tests use a fake.
public protocol GradientGroup: AnyObject {
    var rank: Int { get }
    var size: Int { get }
    var threadLevel: ThreadLevel { get }
    func allreduceSum(_ p: UnsafeMutablePointer<Float>, count: Int, wire: GradientWire, wait: CommWait) throws
}

extension World: GradientGroup {}

/// The type gradients travel in, with the 16-bit staging buffer that type
/// needs (`capacity` floats, the largest bucket). Each exchange owns one:
/// there is no path that silently falls back to fp32.
public final class GradientWire {
    public let dtype: GradientDType
    public let capacity: Int
    /// 16-bit copy of a bucket while it travels; nil for fp32.
    let staging: UnsafeMutablePointer<UInt16>?
    /// Bytes handed to the allreduce so far (count × the type's size).
    public private(set) var bytesSent = 0

    public init(dtype: GradientDType, capacity: Int) {
        self.dtype = dtype
        self.capacity = capacity
        staging = dtype == .fp32 ? nil : .allocate(capacity: max(capacity, 1))
    }

    deinit { staging?.deallocate() }

    /// Counts a slice of `count` floats as sent.
    public func record(count: Int) { bytesSent += count * dtype.bytes }
}
