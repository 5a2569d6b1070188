/// A gradient bucket: consecutive layers whose parameters are one contiguous
/// slice of the parameter and gradient arenas, exchanged as one. The bucket
/// plan builds them, the gradient exchange sends them, the report and the
/// scaling model read them.
public struct Bucket: Codable, Equatable, Sendable {
    /// Position in the order backward completes buckets (0 = first done).
    public var index: Int
    /// Layer indices into the network's layer list, in backward order: the
    /// first is the highest layer, the last the lowest.
    public var layers: [Int]
    /// The slice, in floats from the start of the arena.
    public var offset: Int
    public var count: Int

    public init(index: Int, layers: [Int], offset: Int, count: Int) {
        self.index = index
        self.layers = layers
        self.offset = offset
        self.count = count
    }

    public var bytes: Int { count * 4 }
    public var end: Int { offset + count }
    /// The last layer backward reaches in this bucket: its gradient completes it.
    public var lowestLayer: Int { layers.last ?? 0 }
}
