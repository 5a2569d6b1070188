import Reports
import VGGEngine
import Vocabulary

extension ComputeProfile {
    /// The same compute with each bucket's traffic as PowerSGD sends it, in
    /// `dtype`: two messages per bucket (its P's with its uncompressed
    /// tensors, then its Q's; one when nothing in it is compressed), one
    /// after the other on the communication thread, each ready when its
    /// bucket is. Compression compute is not added here: a profile measured
    /// with --compression holds it in its optimizer phase.
    public func compressed(spec: NetworkSpec, settings: PowerSGDSettings?, dtype: GradientDType) -> ComputeProfile {
        var slices: [ArenaSlice] = []
        var offset = 0
        for l in spec.layers {
            slices.append(ArenaSlice(offset: offset, count: l.parameterCount))
            offset += l.parameterCount
        }
        // The model counts 4 bytes per float: a 16-bit wire is half the floats, rounded up.
        func wire(_ floats: Int) -> Int { dtype == .fp32 ? floats : (floats + 1) / 2 }
        guard let settings else {
            return with(buckets: buckets.map { var b = $0; b.count = wire(b.count); return b })
        }
        let layouts = PowerSGD.layouts(layers: spec.layers, slices: slices, buckets: buckets, settings: settings).layouts
        var messages: [Bucket] = []
        for (b, layout) in zip(buckets, layouts) {
            messages.append(Bucket(index: messages.count, layers: b.layers, offset: b.offset, count: wire(layout.packCount)))
            if layout.qCount > 0 {
                messages.append(Bucket(index: messages.count, layers: b.layers, offset: b.offset, count: wire(layout.qCount)))
            }
        }
        return with(buckets: messages)
    }

    /// `compressed(spec:settings:dtype:)` for the network a run report describes.
    public func compressed(report r: RunReport, settings: PowerSGDSettings?, dtype: GradientDType) -> ComputeProfile {
        compressed(spec: NetworkSpec(model: r.model, imageSize: r.imageSize, classes: r.classes, widthDivisor: r.widthDivisor),
                   settings: settings, dtype: dtype)
    }
}
