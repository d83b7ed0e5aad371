//! The benchmark (being written).
pub fn run(_args: &[String]) -> Result<(), String> {
    Err("bench: not yet available".into())
}
