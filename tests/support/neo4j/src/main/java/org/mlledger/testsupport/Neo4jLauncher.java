package org.mlledger.testsupport;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.CountDownLatch;

import org.neo4j.configuration.GraphDatabaseSettings;
import org.neo4j.configuration.connectors.BoltConnector;
import org.neo4j.configuration.connectors.BoltConnectorInternalSettings;
import org.neo4j.configuration.connectors.HttpConnector;
import org.neo4j.configuration.connectors.HttpsConnector;
import org.neo4j.configuration.helpers.SocketAddress;
import org.neo4j.dbms.api.DatabaseManagementService;
import org.neo4j.dbms.api.DatabaseManagementServiceBuilder;
import org.neo4j.graphdb.GraphDatabaseService;

/**
 * Runs an embedded Neo4j Community database for the test-suite.
 *
 * <pre>
 * java -jar neo4j-launcher.jar HOME_DIR BOLT_PORT PASSWORD
 * </pre>
 *
 * <p>HOME_DIR holds everything the server writes: the store files under
 * {@code data/databases/}, the transaction logs under {@code data/transactions/} and the
 * server's own logs under {@code logs/}. Bolt listens on 127.0.0.1:BOLT_PORT only, with
 * authentication on: the user {@code neo4j} gets PASSWORD (at least 8 characters), no
 * change required. A PASSWORD of {@code -} is read from the first line of standard input
 * instead (it then stays off the command line), and the server shuts down when standard
 * input reaches its end, so it does not outlive the process that started it.
 *
 * <p>Once Bolt accepts connections with that password, one line is printed on standard
 * output: {@code NEO4J READY bolt://127.0.0.1:PORT}. SIGTERM (or SIGINT) shuts the
 * database down cleanly and prints {@code NEO4J STOPPED}. Exit status 2 means bad
 * arguments, 1 that the server could not start (the reason on standard error).
 *
 * <p>The page cache is 64 MB unless the system property {@code mlledger.neo4j.pagecache}
 * says otherwise: a number of bytes, or one with a {@code k}, {@code m} or {@code g}
 * suffix (powers of 1024), e.g. {@code -Dmlledger.neo4j.pagecache=1g}.
 */
public final class Neo4jLauncher {
    /** The system property that sets the page cache (bytes, or 512m, 2g, ...). */
    static final String PAGE_CACHE_PROPERTY = "mlledger.neo4j.pagecache";
    private static final long DEFAULT_PAGE_CACHE_BYTES = 64L * 1024 * 1024;
    private static final long READY_TIMEOUT_MS = 120_000;
    private static final int MIN_PASSWORD_LENGTH = 8;
    private static final Duration SHUTDOWN_WAIT = Duration.ofMillis(200);

    private Neo4jLauncher() {}

    public static void main(String[] args) {
        PrintStream out = System.out;
        if (args.length != 3) {
            System.err.println("usage: java -jar neo4j-launcher.jar HOME_DIR BOLT_PORT PASSWORD|-");
            System.exit(2);
        }
        Path home = Path.of(args[0]).toAbsolutePath();
        int port;
        try {
            port = Integer.parseInt(args[1]);
        } catch (NumberFormatException e) {
            port = -1;
        }
        if (port < 1 || port > 65535) {
            System.err.println("BOLT_PORT must be a TCP port number (1-65535), got: " + args[1]);
            System.exit(2);
        }
        boolean fromStdin = "-".equals(args[2]);
        BufferedReader stdin =
                new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        String password = args[2];
        if (fromStdin) {
            try {
                password = stdin.readLine();
            } catch (IOException e) {
                password = null;
            }
            if (password == null) {
                System.err.println("PASSWORD is '-' but standard input ended before a line");
                System.exit(2);
            }
        }
        if (password.length() < MIN_PASSWORD_LENGTH) {
            System.err.println("PASSWORD must have at least " + MIN_PASSWORD_LENGTH
                    + " characters (Neo4j's minimum), got " + password.length());
            System.exit(2);
        }

        long pageCache;
        try {
            pageCache = pageCacheBytes(System.getProperty(PAGE_CACHE_PROPERTY));
        } catch (IllegalArgumentException e) {
            System.err.println(e.getMessage());
            System.exit(2);
            return;
        }

        DatabaseManagementService dbms;
        try {
            dbms = new DatabaseManagementServiceBuilder(home)
                    .setConfig(GraphDatabaseSettings.auth_enabled, true)
                    .setConfig(BoltConnector.enabled, true)
                    .setConfig(BoltConnector.listen_address, new SocketAddress("127.0.0.1", port))
                    .setConfig(BoltConnector.advertised_address, new SocketAddress("127.0.0.1", port))
                    .setConfig(HttpConnector.enabled, false)
                    .setConfig(HttpsConnector.enabled, false)
                    .setConfig(GraphDatabaseSettings.pagecache_memory, pageCache)
                    .setConfig(GraphDatabaseSettings.preallocate_logical_logs, false)
                    // Bolt waits 5 s by default for its idle worker threads on shutdown.
                    .setConfig(BoltConnectorInternalSettings.thread_pool_shutdown_wait_time,
                            SHUTDOWN_WAIT)
                    .setConfig(BoltConnectorInternalSettings.connection_shutdown_wait_time,
                            SHUTDOWN_WAIT)
                    .build();
        } catch (RuntimeException e) {
            System.err.println("Neo4j could not start in " + home + " with Bolt on 127.0.0.1:"
                    + port + ": " + e);
            e.printStackTrace();
            System.exit(1);
            return;
        }

        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                dbms.shutdown();
                out.println("NEO4J STOPPED");
                out.flush();
            } finally {
                stopped.countDown();
            }
        }, "neo4j-shutdown"));

        try {
            GraphDatabaseService system = dbms.database(GraphDatabaseSettings.SYSTEM_DATABASE_NAME);
            system.executeTransactionally(
                    "ALTER USER neo4j SET PASSWORD $password CHANGE NOT REQUIRED",
                    Map.of("password", password));
            waitForBolt(port);
        } catch (Exception e) {
            System.err.println("Neo4j started but could not be made ready: " + e);
            e.printStackTrace();
            System.exit(1);
            return;
        }

        out.println("NEO4J READY bolt://127.0.0.1:" + port);
        out.flush();

        if (fromStdin) {
            try {
                while (stdin.readLine() != null) {
                    // Anything after the password is ignored; only the end matters.
                }
            } catch (IOException e) {
                System.err.println("standard input failed (" + e + "); shutting down");
            }
            System.exit(0);
        }
        try {
            stopped.await();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /**
     * Bytes of page cache that {@code value} names: {@code null} or blank is the default
     * (64 MB); else digits with an optional {@code k}, {@code m} or {@code g} suffix (any
     * case, powers of 1024), at least 1 MB.
     */
    static long pageCacheBytes(String value) {
        if (value == null || value.isBlank()) {
            return DEFAULT_PAGE_CACHE_BYTES;
        }
        String text = value.trim().toLowerCase(java.util.Locale.ROOT);
        long unit = 1;
        char last = text.charAt(text.length() - 1);
        if (last == 'k' || last == 'm' || last == 'g') {
            unit = last == 'k' ? 1024L : last == 'm' ? 1024L * 1024 : 1024L * 1024 * 1024;
            text = text.substring(0, text.length() - 1);
        }
        long bytes;
        try {
            bytes = Math.multiplyExact(Long.parseLong(text), unit);
        } catch (NumberFormatException | ArithmeticException e) {
            bytes = -1;
        }
        if (bytes < 1024L * 1024) {
            throw new IllegalArgumentException("-D" + PAGE_CACHE_PROPERTY
                    + " must be a size of at least 1m (bytes, or with a k, m or g suffix), got: "
                    + value);
        }
        return bytes;
    }

    private static void waitForBolt(int port) throws IOException, InterruptedException {
        long deadline = System.currentTimeMillis() + READY_TIMEOUT_MS;
        while (true) {
            try (Socket socket = new Socket()) {
                socket.connect(new InetSocketAddress("127.0.0.1", port), 1000);
                return;
            } catch (IOException e) {
                if (System.currentTimeMillis() > deadline) {
                    throw new IOException("Bolt did not accept connections on 127.0.0.1:" + port
                            + " within " + READY_TIMEOUT_MS / 1000 + "s", e);
                }
                Thread.sleep(50);
            }
        }
    }
}
