fn main() {
    std::process::exit(envbuild::cli::main());
}
