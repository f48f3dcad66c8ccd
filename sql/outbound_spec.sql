-- Outbound specs: every mistake is an error before anything is sent
-- (22023 naming the key, 0A000, 54000, 42501).  No network needed.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS batch_ops;
RESET client_min_messages;
\set VERBOSITY default
SELECT batch_ops.run_outbound('[]');
SELECT batch_ops.run_outbound('{"devices": [{"host": "h"}]}');
SELECT batch_ops.run_outbound('{"driver": "telnet", "devices": [{"host": "h"}]}');
SELECT batch_ops.run_outbound('{"driver": "ssh", "devices": [{"host": "h"}], "command": ["show clock"]}');
SELECT batch_ops.run_outbound('{"driver": "netmiko", "devices": [{"host": "h"}], "command": ["show clock"]}');
-- ssh (0A000 in a build without libssh2: expected/outbound_spec_1.out)
SELECT batch_ops.run_outbound('{"driver": "netmiko", "connection_args": {"device_type": "cisco_ios", "host": "10.0.0.1", "username": "admin", "password": "pw"}, "command": "show version"}');
SELECT batch_ops.run_outbound('{"driver": "ssh", "devices": [{"host": "h", "device_type": "cisco_xr"}], "command": "show clock"}');
SELECT batch_ops.run_outbound('{"driver": "ssh", "devices": [{"host": "h"}], "command": ["show clock\nreload"]}');
SELECT batch_ops.run_outbound('{"driver": "ssh", "devices": [{"host": "h"}], "config": []}');
SELECT batch_ops.run_outbound('{"driver": "ssh", "devices": [{"host": "h"}]}');
SELECT batch_ops.run_outbound('{"driver": "ssh", "devices": [{"host": "h", "scheme": "https"}], "command": "show clock"}');
SELECT batch_ops.run_outbound('{"driver": "ssh", "connection_args": {"device_type": 3}, "devices": [{"host": "h"}], "command": "show clock"}');
SELECT batch_ops.run_outbound('{"driver": "eapi", "connection_args": {"device_type": "cisco_ios"}, "devices": [{"host": "h"}], "command": ["show clock"]}');
SELECT batch_ops.run_outbound('{"driver": "eapi", "connection_args": {"host": "h"}, "command": ["show clock"]}');
SELECT batch_ops.run_outbound('{"driver": "http", "devices": [{"host": "h"}], "request": {"path": "/"}, "optionz": {}}');
SELECT batch_ops.run_outbound('{"driver": "http", "devices": [{"host": "h"}], "request": {"path": "/"}, "options": {"tll": 5}}');
SELECT batch_ops.run_outbound('{"driver": "http", "devices": [{"host": "h"}], "request": {"path": "/"}, "options": {"queue_strategy": "lifo"}}');
SELECT batch_ops.run_outbound('{"driver": "http", "devices": [{"host": "h"}], "request": {"path": "/"}, "options": {"ttl": -1}}');
SELECT batch_ops.run_outbound('{"driver": "http", "devices": [{"host": "h"}], "request": {"path": "/"}, "options": {"concurrency": 0}}');
SELECT batch_ops.run_outbound('{"driver": "http", "devices": [{"host": "h"}], "request": {"path": "/"}, "options": {"retries": 1.5}}');
SELECT batch_ops.run_outbound('{"driver": "http", "devices": [{"host": "h"}], "request": {"path": "/"}, "options": {"retry_unsafe": "yes"}}');
SELECT batch_ops.run_outbound('{"driver": "http", "devices": [{"host": "h"}], "request": {"path": "/"}, "connection_args": {"scheme": "ftp"}}');
SELECT batch_ops.run_outbound('{"driver": "http", "devices": [{"host": "h"}], "request": {"path": "/"}, "connection_args": {"port": 70000}}');
SELECT batch_ops.run_outbound('{"driver": "http", "devices": [{"host": "h"}], "request": {"path": "/"}, "connection_args": {"timeout": "30"}}');
SELECT batch_ops.run_outbound('{"driver": "http", "devices": [{"host": "h"}], "request": {"path": "/"}, "connection_args": {"user": "x"}}');
SELECT batch_ops.run_outbound('{"driver": "http", "devices": [{"host": "h", "port": "x"}], "request": {"path": "/"}}');
SELECT batch_ops.run_outbound('{"driver": "http", "devices": [{"name": "h"}], "request": {"path": "/"}}');
SELECT batch_ops.run_outbound('{"driver": "http", "devices": {"host": "h"}, "request": {"path": "/"}}');
SELECT batch_ops.run_outbound('{"driver": "http", "devices": ["h"], "request": {"path": "/"}}');
SELECT batch_ops.run_outbound('{"driver": "http", "devices": [], "request": {"path": "/"}}');
SELECT batch_ops.run_outbound('{"driver": "http", "devices": [{"host": "h"}]}');
SELECT batch_ops.run_outbound('{"driver": "eapi", "devices": [{"host": "h"}]}');
SELECT batch_ops.run_outbound('{"driver": "eapi", "devices": [{"host": "h"}], "command": ["show clock"], "config": ["hostname x"]}');
SELECT batch_ops.run_outbound('{"driver": "eapi", "devices": [{"host": "h"}], "command": [1]}');
SELECT batch_ops.run_outbound('{"driver": "meraki", "devices": [{"host": "h"}]}');
SELECT batch_ops.run_outbound('{"driver": "eapi", "actions": [{"resource": "/x"}], "command": ["show clock"]}');
-- limits: run_outbound at most max_sync_targets, a job max_outbound_targets
SELECT batch_ops.run_outbound(jsonb_build_object('driver', 'http', 'request', '{"path": "/"}'::jsonb,
	'devices', (SELECT jsonb_agg(jsonb_build_object('host', 'h' || i)) FROM generate_series(1, 51) i)));
SET batch_ops.max_outbound_targets = 2;
SELECT batch_ops.submit_outbound('{"driver": "http", "devices": [{"host": "a"}, {"host": "b"}, {"host": "c"}], "request": {"path": "/"}}');
RESET batch_ops.max_outbound_targets;
-- a valid spec, but batch_ops.outbound_networks is empty: nothing is allowed
SHOW batch_ops.outbound_networks;
SELECT batch_ops.run_outbound('{"driver": "http", "devices": [{"host": "127.0.0.1"}], "request": {"path": "/"}}');
SELECT batch_ops.submit_outbound('{"driver": "http", "devices": [{"host": "127.0.0.1"}], "request": {"path": "/"}}');
-- and a role outside batch_ops_outbound may not send at all
CREATE ROLE outbound_nobody;
SET ROLE outbound_nobody;
SELECT batch_ops.run_outbound('{"driver": "http", "devices": [{"host": "127.0.0.1"}], "request": {"path": "/"}}');
RESET ROLE;
DROP ROLE outbound_nobody;
-- another role's job: its results "do not exist"
SELECT * FROM batch_ops.outbound_results(-1);
