// Compiles the lab's Java client into a cache directory with the JDK's
// in-process compiler (javax.tools), so the lab needs only a JRE with the
// jdk.compiler module (Debian's default-jre-headless has it) and compiles once.
// Usage: java Compile.java OUTDIR SOURCE.java
import javax.tools.ToolProvider;

public class Compile {
    public static void main(String[] args) {
        var javac = ToolProvider.getSystemJavaCompiler();
        if (javac == null) {
            System.err.println("no Java compiler in this runtime (the jdk.compiler module)");
            System.exit(1);
        }
        System.exit(javac.run(null, null, null, "-d", args[0], args[1]));
    }
}
