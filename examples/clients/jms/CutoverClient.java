/*
 * Reference JMS client for a cutover: what a migrated ActiveMQ (OpenWire) producer and consumer
 * must do. Plain JMS 1.1 plus ActiveMQ's connection factory; the broker URL is handed to
 * ActiveMQConnectionFactory verbatim, so ActiveMQ's own failover: transport does the connecting
 * (members, randomize, reconnects). Nothing here parses a broker URL.
 *
 * Where the URL comes from: a file, re-read every 0.5 s. On a host, a config agent (or a
 * restart hook) keeps that file equal to the client's SSM parameter; the end-to-end tests
 * (tests/e2e/jms.py) simulate that agent by copying the parameter into the file every 0.2 s.
 * When the URL changes:
 *   - a producer switches between two messages: it opens a connection with the new URL while it
 *     goes on sending over the old one (make before break: opening a TLS connection takes a
 *     few hundred milliseconds, which would otherwise be a pause in sending); once it is open,
 *     after the last send over the old connection has returned (a synchronous, persistent send
 *     returns once the broker has stored the message), it closes the old connection and the
 *     sequence goes on over the new one;
 *   - a consumer opens a connection with the new URL (it starts consuming there), then closes
 *     the old one. Messages the old one had prefetched but not acknowledged go back to the
 *     broker and are delivered again, possibly after newer ones and possibly to another
 *     consumer: expect duplicates (never losses), and make processing idempotent.
 *
 * Producer: persistent, synchronous sends, round-robin over the queues; each message carries
 * its producer's name, its queue and a sequence number per (producer, queue), as properties
 * and in the body. After each send returns it prints "S <queue> <seq> <connection number>" (the
 * connection it went over: which broker got it, with the "C" lines).
 * Consumer: CLIENT_ACKNOWLEDGE; each message is processed first (it prints
 * "R <producer> <queue> <seq> <epoch-millis>") and acknowledged after.
 * Both print "C <epoch-millis> <millis it took> <connection number> <connected broker URI>
 * <broker name>" whenever a connection is connected (also after its failover transport
 * reconnected by itself), "I <epoch-millis> <connection number> interrupted" when it lost its
 * broker, and "E <text>" for errors. Connections are numbered 1, 2, ... in the order opened.
 *
 * Build and run (Debian's activemq package ships the jars):
 *   CP=/usr/share/java/activemq-client.jar:/usr/share/java/geronimo-jms_1.1_spec.jar:\
 *   /usr/share/java/hawtbuf.jar:/usr/share/java/geronimo-j2ee-management-1.1-spec.jar:\
 *   /usr/share/java/slf4j-api.jar:/usr/share/java/slf4j-simple.jar
 *   javac -cp $CP -d build CutoverClient.java
 *   java -cp build:$CP CutoverClient produce --url-file /etc/app/broker-url \
 *       --name orders-api --queues orders.created --count 1000 --rate 100
 *   java -cp build:$CP CutoverClient consume --url-file /etc/app/broker-url \
 *       --name orders-worker --queues orders.created,orders.paid --prefetch 100
 * Amazon MQ: credentials with --user and the environment variable named by --password-env;
 * its ssl:// endpoint's certificate is publicly trusted (the tests use their own trust store).
 */

import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.CancellationException;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;

import javax.jms.Connection;
import javax.jms.DeliveryMode;
import javax.jms.JMSException;
import javax.jms.Message;
import javax.jms.MessageConsumer;
import javax.jms.MessageProducer;
import javax.jms.Session;
import javax.jms.TextMessage;

import org.apache.activemq.ActiveMQConnection;
import org.apache.activemq.ActiveMQConnectionFactory;
import org.apache.activemq.command.BrokerInfo;
import org.apache.activemq.transport.TransportListener;
import org.apache.activemq.transport.failover.FailoverTransport;

public final class CutoverClient {

    private static final PrintStream OUT =
            new PrintStream(System.out, false, StandardCharsets.UTF_8);

    private static final AtomicInteger CONNECTIONS = new AtomicInteger();

    private CutoverClient() {}

    /** One line on stdout, flushed at once: the test (or an operator) reads it as it comes. */
    static void record(String line) {
        synchronized (OUT) {
            OUT.println(line);
            OUT.flush();
        }
    }

    /** The broker URL, re-read from a file every 0.5 s by a daemon thread. */
    static final class UrlWatcher {
        private final Path file;
        private volatile String url;

        UrlWatcher(Path file) throws IOException {
            this.file = file;
            this.url = read();
            if (url == null) {
                throw new IOException("no broker URL in " + file);
            }
            Thread thread = new Thread(this::poll, "url-watcher");
            thread.setDaemon(true);
            thread.start();
        }

        private String read() {
            try {
                String text = new String(Files.readAllBytes(file), StandardCharsets.UTF_8).trim();
                return text.isEmpty() ? null : text;
            } catch (IOException e) {
                return null; // being replaced, or gone for a moment: keep the last URL
            }
        }

        private void poll() {
            while (true) {
                try {
                    Thread.sleep(500);
                } catch (InterruptedException e) {
                    return;
                }
                String value = read();
                if (value != null) {
                    url = value;
                }
            }
        }

        String current() {
            return url;
        }
    }

    static final class Options {
        String role;
        Path urlFile;
        String name = "client";
        String[] queues = new String[0];
        int count = 1000;
        double rate = 0; // messages per second; 0: as fast as the broker confirms
        int prefetch = 100;
        String user;
        String passwordEnv;

        static Options parse(String[] args) {
            Options o = new Options();
            if (args.length == 0 || !(args[0].equals("produce") || args[0].equals("consume"))) {
                throw new IllegalArgumentException("usage: produce|consume --url-file F --name N"
                        + " --queues a,b [--count N] [--rate R] [--prefetch P]"
                        + " [--user U --password-env VAR]");
            }
            o.role = args[0];
            for (int i = 1; i < args.length; i += 2) {
                if (i + 1 >= args.length) {
                    throw new IllegalArgumentException("missing value for " + args[i]);
                }
                String value = args[i + 1];
                switch (args[i]) {
                    case "--url-file": o.urlFile = Paths.get(value); break;
                    case "--name": o.name = value; break;
                    case "--queues": o.queues = value.split(","); break;
                    case "--count": o.count = Integer.parseInt(value); break;
                    case "--rate": o.rate = Double.parseDouble(value); break;
                    case "--prefetch": o.prefetch = Integer.parseInt(value); break;
                    case "--user": o.user = value; break;
                    case "--password-env": o.passwordEnv = value; break;
                    default: throw new IllegalArgumentException("unknown option " + args[i]);
                }
            }
            if (o.urlFile == null || o.queues.length == 0) {
                throw new IllegalArgumentException("--url-file and --queues are required");
            }
            return o;
        }
    }

    /**
     * A connection made from the URL exactly as given. Sends are synchronous (alwaysSyncSend:
     * send() returns once the broker has the message; never async send). The prefetch is set
     * deliberately: it bounds how many messages a consumer holds unacknowledged, which is how
     * many may be redelivered (as duplicates) when it moves.
     */
    static ActiveMQConnection connect(String url, Options options, int number)
            throws JMSException {
        long began = System.currentTimeMillis();
        ActiveMQConnectionFactory factory = new ActiveMQConnectionFactory(url);
        factory.setUseAsyncSend(false);
        factory.setAlwaysSyncSend(true);
        factory.getPrefetchPolicy().setQueuePrefetch(options.prefetch);
        String password = options.passwordEnv == null ? null : System.getenv(options.passwordEnv);
        ActiveMQConnection connection =
                (ActiveMQConnection) factory.createConnection(options.user, password);
        AtomicReference<BrokerInfo> before = new AtomicReference<>();
        AtomicBoolean interrupted = new AtomicBoolean(false);
        connection.addTransportListener(new TransportListener() {
            @Override
            public void onCommand(Object command) {}

            @Override
            public void onException(IOException error) {
                record("E transport " + error);
            }

            @Override
            public void transportInterupted() {
                before.set(connection.getBrokerInfo());
                interrupted.set(true);
                record("I " + System.currentTimeMillis() + " " + number + " interrupted");
            }

            @Override
            public void transportResumed() {
                if (interrupted.getAndSet(false)) {
                    // The failover transport reconnected (maybe to another member) by itself.
                    // Recorded off the transport's thread: it waits for the new BrokerInfo.
                    long at = System.currentTimeMillis();
                    BrokerInfo old = before.get();
                    new Thread(() -> connected(connection, number, at, old), "reconnected")
                            .start();
                }
            }
        });
        connection.start(); // with failover: blocks until a member accepted the connection
        connected(connection, number, began, null);
        return connection;
    }

    /**
     * Records where connection {@code number} is now: the member the transport is connected to
     * and the name of the broker there (once its BrokerInfo, newer than {@code old}, came).
     */
    static void connected(ActiveMQConnection connection, int number, long began, BrokerInfo old) {
        String where = "?";
        FailoverTransport failover = connection.getTransport().narrow(FailoverTransport.class);
        if (failover != null && failover.getConnectedTransportURI() != null) {
            where = failover.getConnectedTransportURI().toString();
        } else if (connection.getTransport().getRemoteAddress() != null) {
            where = connection.getTransport().getRemoteAddress();
        }
        BrokerInfo info = connection.getBrokerInfo();
        for (int i = 0; i < 100 && (info == null || info == old); i++) {
            sleep(20); // the broker sends its BrokerInfo right after the connection opened
            info = connection.getBrokerInfo();
        }
        String broker = info == null || info == old ? "?" : info.getBrokerName();
        long now = System.currentTimeMillis();
        record("C " + now + " " + (now - began) + " " + number + " " + where + " " + broker);
    }

    static void closeQuietly(Connection connection) {
        if (connection == null) {
            return;
        }
        try {
            connection.close();
        } catch (JMSException e) {
            record("E close " + e);
        }
    }

    static void sleep(long millis) {
        try {
            Thread.sleep(millis);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    // --- producer ---------------------------------------------------------------------------

    static final class ProducerSide {
        final int number = CONNECTIONS.incrementAndGet();
        final ActiveMQConnection connection;
        final Session session;
        final Map<String, MessageProducer> producers = new HashMap<>();
        final String url;

        ProducerSide(String url, Options options) throws JMSException {
            this.url = url;
            this.connection = connect(url, options, number);
            try {
                session = connection.createSession(false, Session.AUTO_ACKNOWLEDGE);
                for (String queue : options.queues) {
                    MessageProducer producer = session.createProducer(session.createQueue(queue));
                    producer.setDeliveryMode(DeliveryMode.PERSISTENT);
                    producers.put(queue, producer);
                }
            } catch (JMSException e) {
                closeQuietly(connection);
                throw e;
            }
        }
    }

    static ProducerSide openProducer(UrlWatcher watcher, Options options) {
        long pause = 200;
        while (true) {
            String url = watcher.current();
            try {
                return new ProducerSide(url, options);
            } catch (JMSException e) {
                record("E connect " + e);
                sleep(pause); // the URL may change while we wait: read it again
                pause = Math.min(2000, pause * 2);
            }
        }
    }

    /**
     * The connection to a new URL, opened on a thread of its own while sending goes on over the
     * old one (make before break): the switch itself, between two messages, then takes no time.
     */
    static final class Pending {
        final String url;
        final CompletableFuture<ProducerSide> side;

        Pending(String url, Options options) {
            this.url = url;
            this.side = CompletableFuture.supplyAsync(() -> {
                try {
                    return new ProducerSide(url, options);
                } catch (JMSException e) {
                    throw new CompletionException(e);
                }
            }, runnable -> {
                Thread thread = new Thread(runnable, "connect");
                thread.setDaemon(true);
                thread.start();
            });
        }

        /** Not wanted any more (the URL changed again, or we stop): close it once it is open. */
        void discard() {
            side.thenAccept(opened -> closeQuietly(opened.connection));
        }
    }

    static int produce(Options options, UrlWatcher watcher, AtomicBoolean stopping) {
        ProducerSide side = openProducer(watcher, options);
        Pending pending = null;
        long nextAttempt = 0;
        Map<String, Integer> sequence = new LinkedHashMap<>();
        for (String queue : options.queues) {
            sequence.put(queue, 0);
        }
        long started = System.nanoTime();
        int sent = 0;
        for (int index = 0; index < options.count && !stopping.get(); index++) {
            String wanted = watcher.current();
            if (side.url.equals(wanted)) {
                if (pending != null) { // changed, then changed back: stay where we are
                    pending.discard();
                    pending = null;
                }
            } else if (pending == null || !pending.url.equals(wanted)) {
                if (pending != null) {
                    pending.discard();
                }
                pending = System.currentTimeMillis() >= nextAttempt
                        ? new Pending(wanted, options) : null;
            } else if (pending.side.isDone()) {
                try {
                    ProducerSide next = pending.side.join();
                    // Between two messages: the previous send has returned, so it is stored.
                    closeQuietly(side.connection);
                    side = next;
                } catch (CompletionException | CancellationException e) {
                    record("E connect " + e.getCause());
                    nextAttempt = System.currentTimeMillis() + 500;
                }
                pending = null;
            }
            String queue = options.queues[index % options.queues.length];
            int seq = sequence.merge(queue, 1, Integer::sum);
            while (true) {
                try {
                    TextMessage message = side.session.createTextMessage(String.format(
                            "{\"producer\": \"%s\", \"queue\": \"%s\", \"seq\": %d}",
                            options.name, queue, seq));
                    message.setStringProperty("producer", options.name);
                    message.setStringProperty("queue", queue);
                    message.setIntProperty("seq", seq);
                    side.producers.get(queue).send(message);
                    break;
                } catch (JMSException e) {
                    // Not confirmed (a connection without failover lost its broker): send it
                    // again on a new connection. The consumer may see it twice, never not.
                    record("E send " + queue + " " + seq + " " + e);
                    closeQuietly(side.connection);
                    side = openProducer(watcher, options);
                }
            }
            sent++;
            record("S " + queue + " " + seq + " " + side.number);
            if (options.rate > 0) {
                long due = started + (long) ((index + 1) * 1e9 / options.rate);
                long wait = due - System.nanoTime();
                if (wait > 0) {
                    sleep(TimeUnit.NANOSECONDS.toMillis(wait));
                }
            }
        }
        if (pending != null) {
            pending.discard();
        }
        closeQuietly(side.connection);
        record("DONE sent " + sent);
        return 0;
    }

    // --- consumer ---------------------------------------------------------------------------

    static void onMessage(Message message) {
        try {
            String producer = message.getStringProperty("producer");
            String queue = message.getStringProperty("queue");
            String seq = message.getObjectProperty("seq") == null
                    ? "-" : String.valueOf(message.getIntProperty("seq"));
            // Process first (here: record it), acknowledge after: a message whose processing
            // did not finish is redelivered, never lost. The processing must be idempotent.
            record("R " + producer + " " + queue + " " + seq + " " + System.currentTimeMillis());
            message.acknowledge();
        } catch (JMSException e) {
            record("E ack " + e); // not acknowledged: the broker delivers it again
        }
    }

    /** A consumer connection: one CLIENT_ACKNOWLEDGE session, a listener on every queue. */
    static final class ConsumerSide {
        final int number = CONNECTIONS.incrementAndGet();
        final String url;
        final ActiveMQConnection connection;
        final AtomicBoolean broken = new AtomicBoolean(false);

        ConsumerSide(String url, Options options) throws JMSException {
            this.url = url;
            this.connection = connect(url, options, number);
            try {
                // Without failover: in the URL a lost broker ends the connection: reconnect.
                connection.setExceptionListener(e -> broken.set(true));
                Session session = connection.createSession(false, Session.CLIENT_ACKNOWLEDGE);
                for (String queue : options.queues) {
                    MessageConsumer consumer = session.createConsumer(session.createQueue(queue));
                    consumer.setMessageListener(CutoverClient::onMessage);
                }
            } catch (JMSException e) {
                closeQuietly(connection);
                throw e;
            }
        }
    }

    static int consume(Options options, UrlWatcher watcher, AtomicBoolean stopping) {
        ConsumerSide side = null;
        while (!stopping.get()) {
            String wanted = watcher.current();
            try {
                if (side == null || side.broken.get()) {
                    if (side != null) {
                        closeQuietly(side.connection);
                    }
                    side = null;
                    side = new ConsumerSide(wanted, options);
                } else if (!side.url.equals(wanted)) {
                    // Make before break: the new connection consumes before the old one closes.
                    // Closing waits for a message being processed; the old connection's
                    // prefetched, unacknowledged messages go back to the broker and are
                    // delivered again (duplicates, possibly after newer messages).
                    ConsumerSide next = new ConsumerSide(wanted, options);
                    closeQuietly(side.connection);
                    side = next;
                }
            } catch (JMSException e) {
                record("E connect " + e);
                sleep(500);
            }
            sleep(50);
        }
        if (side != null) {
            closeQuietly(side.connection);
        }
        return 0;
    }

    public static void main(String[] args) throws Exception {
        Options options;
        try {
            options = Options.parse(args);
        } catch (IllegalArgumentException e) {
            System.err.println(e.getMessage());
            System.exit(2);
            return;
        }
        UrlWatcher watcher = new UrlWatcher(options.urlFile);
        AtomicBoolean stopping = new AtomicBoolean(false);
        CountDownLatch finished = new CountDownLatch(1);
        Thread main = Thread.currentThread();
        // SIGTERM: stop taking messages, close the connection (acknowledgements are flushed,
        // prefetched messages go back to the broker), then exit.
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            stopping.set(true);
            try {
                if (!finished.await(10, TimeUnit.SECONDS)) {
                    main.interrupt();
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }, "shutdown"));
        int code;
        try {
            code = options.role.equals("produce")
                    ? produce(options, watcher, stopping)
                    : consume(options, watcher, stopping);
        } finally {
            finished.countDown();
        }
        if (!stopping.get()) { // never call exit while the shutdown hook runs: it would hang
            System.exit(code);
        }
    }
}
