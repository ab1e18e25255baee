//! `shmq producer rm`

use crate::cli::ProducerCmd;
use shmq::Queue;

pub fn run(cmd: ProducerCmd) -> Result<(), String> {
    match cmd {
        ProducerCmd::Rm { path, name } => {
            let q = Queue::open(&path).map_err(super::explain)?;
            q.remove_producer_name(&name).map_err(super::explain)?;
            println!("producer name '{name}' removed");
            Ok(())
        }
    }
}
