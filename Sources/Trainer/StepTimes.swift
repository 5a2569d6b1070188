import Foundation

/// Times of one step on one rank, seconds.
public struct StepTimes: Codable, Equatable, Sendable {
    public var wall = 0.0
    public var data = 0.0
    public var forward = 0.0
    public var backward = 0.0
    /// Optimizer, including the waits for buckets still in flight.
    public var optimizer = 0.0
    /// Time the communication spent in allreduce (busy, overlapped or not).
    public var allreduce = 0.0
    /// Time the compute thread waited for communication.
    public var exposed = 0.0
    public var loss = 0.0
    /// The first bucket with a NaN or Inf gradient this step, if any (not reported).
    public var nonfiniteBucket: Int? = nil

    private enum CodingKeys: String, CodingKey { case wall, data, forward, backward, optimizer, allreduce, exposed, loss }

    static let fields = 8
    var packed: [Double] { [wall, data, forward, backward, optimizer, allreduce, exposed, loss] }
    public init() {}
    init(packed p: ArraySlice<Double>) {
        let v = Array(p)
        wall = v[0]; data = v[1]; forward = v[2]; backward = v[3]
        optimizer = v[4]; allreduce = v[5]; exposed = v[6]; loss = v[7]
    }
}
