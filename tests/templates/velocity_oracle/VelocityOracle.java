// The independent oracle for the integration templates: Apache Velocity 1.7 with Commons Lang 2.6,
// the engine and the escapeJavaScript API Gateway uses, with $input, $util and $context bound as
// the mapping template reference describes:
// https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-mapping-template-reference.html
// https://docs.aws.amazon.com/apigateway/latest/developerguide/websocket-api-mapping-template-reference.html
//
// Protocol: one JSON case per stdin line, {"template": str, "body": str, "context": {...},
// "stageVariables": {...}}; one JSON answer per stdout line, {"ok": true, "output": str} or
// {"ok": false, "error": str}, in order. Answers are ASCII-only JSON (non-ASCII as \\uXXXX), so a
// lone surrogate in an output survives the trip back to Python. One JVM renders a whole corpus.

import com.fasterxml.jackson.core.JsonGenerator;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.json.JsonMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.OutputStreamWriter;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.net.URLDecoder;
import java.net.URLEncoder;
import java.nio.charset.StandardCharsets;
import java.util.Base64;
import java.util.HashMap;
import java.util.Map;
import java.util.Properties;
import org.apache.commons.lang.StringEscapeUtils;
import org.apache.velocity.VelocityContext;
import org.apache.velocity.app.VelocityEngine;

public final class VelocityOracle {
    // A body is JSON only if it is one JSON value: trailing text fails, as in the twin.
    private static final ObjectMapper JSON = JsonMapper.builder()
            .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS).build();

    private VelocityOracle() {}

    /** $util: the helper functions of the mapping template reference. */
    public static final class Util {
        /** Commons Lang 2.6 StringEscapeUtils.escapeJavaScript, as API Gateway uses it. */
        public String escapeJavaScript(String text) {
            return StringEscapeUtils.escapeJavaScript(text);
        }

        public String base64Encode(String text) {
            return Base64.getEncoder().encodeToString(text.getBytes(StandardCharsets.UTF_8));
        }

        public String base64Decode(String text) {
            return new String(Base64.getDecoder().decode(text), StandardCharsets.UTF_8);
        }

        public String urlEncode(String text) throws Exception {
            return URLEncoder.encode(text, "UTF-8");
        }

        public String urlDecode(String text) throws Exception {
            return URLDecoder.decode(text, "UTF-8");
        }

        /** A JSON string as the object it denotes (Map, List, String, Number, Boolean, null). */
        public Object parseJson(String text) throws Exception {
            return JSON.readValue(text, Object.class);
        }
    }

    /** $input: the payload, read by a JSONPath subset ($, .name, [n], ['name'], ["name"]). */
    public static final class Input {
        private final String body;
        private JsonNode document;
        private boolean parsed;

        Input(String body) {
            this.body = body;
        }

        public String getBody() {
            return body;
        }

        private JsonNode document() throws Exception {
            if (!parsed) {
                document = body.isEmpty() ? null : JSON.readTree(body);
                parsed = true;
            }
            return document;
        }

        private JsonNode select(String path) throws Exception {
            String p = path.trim();
            if (!p.startsWith("$")) {
                throw new IllegalArgumentException("invalid JSONPath " + path);
            }
            JsonNode node = document();
            int i = 1;
            while (i < p.length() && node != null) {
                char c = p.charAt(i);
                if (c == '.') {
                    int end = i + 1;
                    while (end < p.length() && p.charAt(end) != '.' && p.charAt(end) != '[') {
                        end++;
                    }
                    node = node.isObject() ? node.get(p.substring(i + 1, end)) : null;
                    i = end;
                } else if (c == '[') {
                    int close = p.indexOf(']', i);
                    if (close < 0) {
                        throw new IllegalArgumentException("unsupported JSONPath " + path);
                    }
                    String inner = p.substring(i + 1, close);
                    if (inner.length() >= 2 && (inner.charAt(0) == '\'' || inner.charAt(0) == '"')) {
                        String name = inner.substring(1, inner.length() - 1);
                        node = node.isObject() ? node.get(name) : null;
                    } else {
                        int index = Integer.parseInt(inner);
                        node = node.isArray() ? node.get(index) : null;
                    }
                    i = close + 1;
                } else {
                    throw new IllegalArgumentException("unsupported JSONPath " + path);
                }
            }
            return node == null || node.isNull() ? null : node;
        }

        /**
         * $input.json(path): the JSON text of the value at path. What AWS renders for an absent
         * path or an empty body is not documented; like the twin, "" (no template relies on it).
         */
        public String json(String path) throws Exception {
            JsonNode node = select(path);
            return node == null ? "" : JSON.writeValueAsString(node);
        }

        /** $input.path(path): the value at path as a Java object templates navigate. */
        public Object path(String path) throws Exception {
            JsonNode node = select(path);
            return node == null ? null : JSON.treeToValue(node, Object.class);
        }
    }

    public static void main(String[] args) throws Exception {
        Properties properties = new Properties();
        // No velocity.log in the working directory.
        properties.setProperty("runtime.log.logsystem.class",
                "org.apache.velocity.runtime.log.NullLogChute");
        VelocityEngine engine = new VelocityEngine(properties);
        engine.init();
        ObjectMapper answers = JsonMapper.builder()
                .enable(JsonGenerator.Feature.ESCAPE_NON_ASCII).build();
        Util util = new Util();
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        PrintWriter out = new PrintWriter(new OutputStreamWriter(System.out, StandardCharsets.UTF_8));
        String line;
        while ((line = in.readLine()) != null) {
            if (line.isBlank()) {
                continue;
            }
            JsonNode request = JSON.readTree(line);
            ObjectNode answer = answers.createObjectNode();
            try {
                VelocityContext context = new VelocityContext();
                context.put("input", new Input(request.path("body").asText("")));
                context.put("util", util);
                context.put("context", JSON.treeToValue(request.path("context"), Map.class));
                JsonNode stage = request.path("stageVariables");
                context.put("stageVariables",
                        stage.isObject() ? JSON.treeToValue(stage, Map.class) : new HashMap<>());
                StringWriter output = new StringWriter();
                engine.evaluate(context, output, "template", request.path("template").asText());
                answer.put("ok", true);
                answer.put("output", output.toString());
            } catch (Exception exc) {
                Throwable cause = exc.getCause() != null ? exc.getCause() : exc;
                answer.put("ok", false);
                answer.put("error", exc.getClass().getSimpleName() + ": " + cause);
            }
            out.println(answers.writeValueAsString(answer));
        }
        out.flush();
    }
}
