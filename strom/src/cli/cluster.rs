//! `strom cluster`: what the cluster looks like.

use clap::Subcommand;
use kafka_wire::client::Admin;

use super::Cli;
use super::admin::connect;

/// `strom cluster` subcommands.
#[derive(Subcommand)]
pub(super) enum ClusterAction {
    /// Print the cluster id, the controller and the brokers with their racks.
    Describe,
}

pub(super) async fn cluster(cli: &Cli, action: &ClusterAction) -> anyhow::Result<()> {
    let admin = Admin::new(connect(cli).await?);
    match action {
        ClusterAction::Describe => {
            let mut c = admin.describe_cluster().await?;
            c.brokers.sort_by_key(|b| b.node_id);
            println!("ClusterId: {}", c.cluster_id);
            println!("Controller: {}", c.controller_id);
            for b in &c.brokers {
                println!(
                    "Broker: {}\tAddress: {}\tRack: {}",
                    b.node_id,
                    b.address(),
                    b.rack.as_deref().unwrap_or("none")
                );
            }
        }
    }
    Ok(())
}
