fn main() -> std::process::ExitCode {
    omnigent::cli::main()
}
