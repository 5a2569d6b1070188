import Reports
import VGGEngine
import Vocabulary

/// The scaling model's one use of the engine: a bucket plan rebuilt at
/// another bucket size needs the network's layer shapes.
extension ComputeProfile {
    /// The same compute with another bucket plan (layer indices as in the profile).
    public func with(plan: BucketPlan) -> ComputeProfile {
        with(buckets: plan.buckets)
    }
}

extension BucketPlan {
    /// The plan the trainer would build for the report's network at `bucketMB`.
    public init(report r: RunReport, bucketMB: Double) {
        let spec = NetworkSpec(model: r.model, imageSize: r.imageSize, classes: r.classes, widthDivisor: r.widthDivisor)
        self.init(spec: spec, bucketMB: bucketMB)
    }
}
