import ArgumentParser

struct VGGDP: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vgg-dp",
        abstract: "Data-parallel VGG training and benchmarks on MPI and BLAS.",
        discussion: """
        Run one rank:     vgg-dp --model vgg16 --batch-size 16 --mode forward-backward
        Run four ranks:   mpirun -n 4 vgg-dp    (or scripts/launch.sh -n 4)
        """,
        subcommands: [Train.self, Verify.self, AllreduceBench.self, Peak.self, SelfTest.self, ReportCommand.self, ModelCommand.self,
                      Describe.self, SummaryCommand.self, MemoryCommand.self],
        defaultSubcommand: Train.self
    )
}
