//! How a Galera node starts, the same on Swarm and Kubernetes: a shell
//! script run before the image's `docker-entrypoint.sh` (murakumo's
//! MariaDB image and the official one both have bash and that entrypoint).
//!
//! A node starts a new cluster (`--wsrep-new-cluster`) only when no other
//! node answers as part of a primary component, and either
//! - it is the first node and has no Galera state yet (the very first
//!   start of the cluster), or
//! - its state says it is safe to (`safe_to_bootstrap: 1`: the last node to
//!   leave after a clean stop of the whole cluster).
//!
//! Every other start joins the others; a node with no state yet waits
//! (up to 3 minutes) until the nodes named before it are synced, since two
//! full state transfers at once can fail. So the first node losing its volume
//! while the others run joins them (no second cluster), a killed node comes
//! back by incremental or full state transfer, and after a crash of every
//! node nobody bootstraps on their own (MariaDB's recovery: set
//! `safe_to_bootstrap: 1` on the most advanced node). The state-transfer
//! password reaches mariadbd in an option file, never on a command line.

use murakumo_image as image;

/// The script. `first` is a shell test that is true on the first node;
/// `peers` are every node's name, `me` this node's among them; `address` a
/// shell expression for the address the others reach this node at (Swarm
/// publishes a task's name only once it is healthy, which a joining node
/// is not until its state transfer is done: there, its IP).
pub fn start_script(
    cluster: &str,
    first: &str,
    peers: &[String],
    me: &str,
    address: &str,
) -> String {
    format!(
        r#"set -eu
umask 077
root_pw=$(cat {secrets}/{root})
printf '[mariadbd]\nwsrep_sst_auth=root:%s\n' "$root_pw" > /run/mysqld/sst.cnf
state=/var/lib/mysql/grastate.dat
primary_peer() {{
  for p in {peers_sp}; do
    [ "$p" = "{me_sh}" ] && continue
    s=$(MYSQL_PWD="$root_pw" mariadb -h "$p" -uroot --connect-timeout=2 -N -B \
          -e "SHOW STATUS LIKE 'wsrep_cluster_status'" 2>/dev/null | cut -f2) || true
    [ "$s" = Primary ] && return 0
  done
  return 1
}}
synced() {{
  s=$(MYSQL_PWD="$root_pw" mariadb -h "$1" -uroot --connect-timeout=2 -N -B \
        -e "SHOW STATUS LIKE 'wsrep_local_state_comment'" 2>/dev/null | cut -f2) || true
  [ "$s" = Synced ]
}}
new=""
if {{ {{ {first} && [ ! -e "$state" ]; }} || grep -q '^safe_to_bootstrap: *1' "$state" 2>/dev/null; }} && ! primary_peer; then
  echo "galera: no primary component answers: starting a new cluster" >&2
  new="--wsrep-new-cluster"
fi
if [ -z "$new" ] && [ ! -e "$state" ]; then
  waited=0
  for p in {peers_sp}; do
    [ "$p" = "{me_sh}" ] && break
    until synced "$p" || [ "$waited" -ge 180 ]; do sleep 3; waited=$((waited + 3)); done
  done
fi
exec docker-entrypoint.sh mariadbd --defaults-extra-file=/run/mysqld/sst.cnf \
  --wsrep-on=ON --wsrep-provider=/usr/lib/galera/libgalera_smm.so \
  --wsrep-cluster-name={cluster} --wsrep-cluster-address=gcomm://{peers} \
  --wsrep-node-address="{address}" --wsrep-sst-method=mariabackup \
  --binlog-format=ROW --default-storage-engine=InnoDB --innodb-autoinc-lock-mode=2 $new
"#,
        secrets = image::SECRETS,
        root = image::DB_ROOT_PASSWORD,
        peers_sp = peers.join(" "),
        peers = peers.join(","),
        me_sh = me,
        address = address,
    )
}
