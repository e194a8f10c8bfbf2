"""`kproxy install`: kproxy as systemd services on a Linux node (render.py: the files, pure;
join.py: the join file and node credentials; apply.py: disk and systemctl; cli.py: the command)."""
